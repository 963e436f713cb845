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

class Writer {
  private buf = Buffer.allocUnsafe(256);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(10);
    let n = v;
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** A varint field, omitted when 0 (proto3). */
  uint(field: number, v: number): void {
    if (v === 0) return;
    this.tag(field, 0);
    this.varint(v);
  }

  string(field: number, s: string | undefined): void {
    if (!s) return;
    const n = Buffer.byteLength(s);
    this.tag(field, 2);
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos);
  }

  /** A length-delimited sub-message written by `body` (its length is patched in afterwards). */
  message(field: number, body: () => void): void {
    this.tag(field, 2);
    // Reserve one length byte; move the body if its length needs more.
    this.ensure(1);
    const lenAt = this.pos++;
    const start = this.pos;
    body();
    const len = this.pos - start;
    if (len < 0x80) {
      this.buf[lenAt] = len;
      return;
    }
    const bodyCopy = Buffer.from(this.buf.subarray(start, this.pos));
    this.pos = lenAt;
    this.varint(len);
    this.ensure(len);
    bodyCopy.copy(this.buf, this.pos);
    this.pos += len;
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

/** Encodes a RateLimitResponse. */
export function encodeRateLimitResponse(r: WireResponse): Buffer {
  const w = new Writer();
  w.uint(1, r.overallCode);
  for (const s of r.statuses) {
    w.message(2, () => {
      w.uint(1, s.code);
      const limit = s.currentLimit;
      if (limit)
        w.message(2, () => {
          w.uint(1, limit.requestsPerUnit);
          w.uint(2, limit.unit);
          w.string(3, limit.name);
        });
      w.uint(3, s.limitRemaining ?? 0);
      const d = s.durationUntilReset;
      if (d)
        w.message(4, () => {
          w.uint(1, Number(d.seconds));
          w.uint(2, d.nanos);
        });
    });
  }
  for (const h of r.responseHeadersToAdd) {
    w.message(3, () => {
      w.string(1, h.key);
      w.string(2, h.value);
    });
  }
  return w.finish();
}
