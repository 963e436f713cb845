/**
 * A hand-written protobuf encoder for RateLimitResponse (the hot path of every check): the fields
 * Heimdall answers with, in proto3 encoding (zero values omitted). Decodes to the same message as
 * @bufbuild's toBinary of the same values, which the tests check.
 */

/** What a check answers, as plain values. */
export interface WireStatus {
  code: number;
  currentLimit?: { name?: string | undefined; requestsPerUnit: number; unit: number } | undefined;
  limitRemaining?: number | undefined;
  durationUntilReset?: { seconds: bigint; nanos: number } | undefined;
}

export interface WireResponse {
  overallCode: number;
  statuses: WireStatus[];
  responseHeadersToAdd: Array<{ key: string; value: string }>;
}

/**
 * The encoder's scratch buffer and position: one encode runs at a time (encoding is synchronous),
 * and each answer is copied out once at the end, so a call makes no writer, no closures and no
 * intermediate copies.
 */
let buf = Buffer.allocUnsafe(1024);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n));
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function varint(v: number): void {
  ensure(10);
  let n = v;
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
}

/** A varint field, omitted when 0 (proto3). */
function uint(field: number, v: number): void {
  if (v === 0) return;
  varint(field * 8);
  varint(v);
}

function string(field: number, s: string | undefined): void {
  if (!s) return;
  const n = Buffer.byteLength(s);
  varint(field * 8 + 2);
  varint(n);
  ensure(n);
  pos += buf.write(s, pos);
}

/** Starts a length-delimited sub-message: reserves one length byte and answers where it is. */
function begin(field: number): number {
  varint(field * 8 + 2);
  ensure(1);
  return pos++;
}

/** Ends the sub-message begun at `lenAt`: writes its length, moving the body in place when the length takes more than one byte. */
function end(lenAt: number): void {
  const len = pos - lenAt - 1;
  if (len < 0x80) {
    buf[lenAt] = len;
    return;
  }
  let extra = 0;
  for (let n = len >> 7; n > 0; n >>= 7) extra += 1;
  ensure(extra);
  buf.copyWithin(lenAt + 1 + extra, lenAt + 1, pos);
  pos += extra;
  let at = lenAt;
  let n = len;
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at] = n;
}

function status(s: WireStatus): void {
  const at = begin(2);
  uint(1, s.code);
  const limit = s.currentLimit;
  if (limit) {
    const limitAt = begin(2);
    uint(1, limit.requestsPerUnit);
    uint(2, limit.unit);
    string(3, limit.name);
    end(limitAt);
  }
  uint(3, s.limitRemaining ?? 0);
  const d = s.durationUntilReset;
  if (d) {
    const durationAt = begin(4);
    uint(1, Number(d.seconds));
    uint(2, d.nanos);
    end(durationAt);
  }
  end(at);
}

/** Encodes a RateLimitResponse. */
export function encodeRateLimitResponse(r: WireResponse): Buffer {
  pos = 0;
  uint(1, r.overallCode);
  for (const s of r.statuses) status(s);
  for (const h of r.responseHeadersToAdd) {
    const at = begin(3);
    string(1, h.key);
    string(2, h.value);
    end(at);
  }
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  return out;
}
