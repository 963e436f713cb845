/**
 * A hand-written protobuf encoder for RateLimitResponse (the hot path of every check): the fields
 * Heimdall answers with, in proto3 encoding (zero values omitted). Decodes to the same message as
 * @bufbuild's toBinary of the same values, which the tests check.
 */
import type { RateLimitResponse_Code } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';

/**
 * Envoy's RLS names and RateLimitResponse.Code values, for the modules the rate-limit worker loads:
 * importing the generated file would build its descriptors (and their dependencies') in the worker at
 * every start. The tests check them against the generated file.
 */
export const RLS = {
  service: 'envoy.service.ratelimit.v3.RateLimitService',
  method: 'ShouldRateLimit',
  request: 'envoy.service.ratelimit.v3.RateLimitRequest',
  code: { OK: 1 as RateLimitResponse_Code.OK, OVER_LIMIT: 2 as RateLimitResponse_Code.OVER_LIMIT },
} as const;

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
 * The encoder: a scratch buffer reused by every answer (encoding is synchronous) and copied out
 * once at the end, so a call makes no writer, no closures and no intermediate copies. A class with
 * fields rather than module variables: V8 reads fields through inline caches.
 */
class Encoder {
  private buf = Buffer.allocUnsafe(1024);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    let n = v;
    while (n >= 0x80) {
      buf[pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  /** A varint field, omitted when 0 (proto3). */
  private uint(field: number, v: number): void {
    if (v === 0) return;
    this.varint(field * 8);
    this.varint(v);
  }

  private string(field: number, s: string | undefined): void {
    if (!s) return;
    const n = Buffer.byteLength(s);
    this.varint(field * 8 + 2);
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos);
  }

  /** Starts a length-delimited sub-message: reserves one length byte and answers where it is. */
  private begin(field: number): number {
    this.varint(field * 8 + 2);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the sub-message begun at `lenAt`: writes its length, moving the body in place when the length takes more than one byte. */
  private end(lenAt: number): void {
    const len = this.pos - lenAt - 1;
    if (len < 0x80) {
      this.buf[lenAt] = len;
      return;
    }
    let extra = 0;
    for (let n = len >> 7; n > 0; n >>= 7) extra += 1;
    this.ensure(extra);
    const buf = this.buf;
    buf.copyWithin(lenAt + 1 + extra, lenAt + 1, this.pos);
    this.pos += extra;
    let at = lenAt;
    let n = len;
    while (n >= 0x80) {
      buf[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[at] = n;
  }

  private status(s: WireStatus): void {
    const at = this.begin(2);
    this.uint(1, s.code);
    const limit = s.currentLimit;
    if (limit) {
      const limitAt = this.begin(2);
      this.uint(1, limit.requestsPerUnit);
      this.uint(2, limit.unit);
      this.string(3, limit.name);
      this.end(limitAt);
    }
    this.uint(3, s.limitRemaining ?? 0);
    const d = s.durationUntilReset;
    if (d) {
      const durationAt = this.begin(4);
      this.uint(1, Number(d.seconds));
      this.uint(2, d.nanos);
      this.end(durationAt);
    }
    this.end(at);
  }

  encode(r: WireResponse): Buffer {
    this.pos = 0;
    this.uint(1, r.overallCode);
    for (const s of r.statuses) this.status(s);
    for (const h of r.responseHeadersToAdd) {
      const at = this.begin(3);
      this.string(1, h.key);
      this.string(2, h.value);
      this.end(at);
    }
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }
}

const encoder = new Encoder();

/** Encodes a RateLimitResponse. */
export function encodeRateLimitResponse(r: WireResponse): Buffer {
  return encoder.encode(r);
}
