/** The hand-written RateLimitRequest decoder against @bufbuild's fromBinary on generated, edge and malformed bytes. */
import { create, fromBinary, toBinary, type Message } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { RateLimitDescriptor_EntrySchema, RateLimitDescriptor_RateLimitOverrideSchema, RateLimitDescriptorSchema } from '../../../src/gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { RateLimitRequestSchema } from '../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { decodeRateLimitRequest, type RateLimitInput } from '../../../src/ratelimit/wire-request.js';
import { prng } from '../../support/prng.js';

/** The fields a check reads, as plain values (both decoders' outputs go through it). */
const plain = (m: RateLimitInput) => ({
  domain: m.domain,
  hitsAddend: m.hitsAddend,
  descriptors: m.descriptors.map((d) => ({ entries: d.entries.map((e) => ({ key: e.key, value: e.value })), limit: d.limit ? { requestsPerUnit: d.limit.requestsPerUnit, unit: d.limit.unit } : undefined, hitsAddend: d.hitsAddend })),
});

type Outcome = { ok: true; value: ReturnType<typeof plain> } | { ok: false; error: string };
const attempt = (decode: () => RateLimitInput): Outcome => {
  try {
    return { ok: true, value: plain(decode()) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
};
const ours = (bytes: Uint8Array) => attempt(() => decodeRateLimitRequest(bytes));
const theirs = (bytes: Uint8Array) => attempt(() => fromBinary(RateLimitRequestSchema, bytes));

/** Ours accepts only what fromBinary accepts, with the same values, and refuses whatever it refuses. */
function agree(bytes: Uint8Array): boolean {
  const a = ours(bytes);
  const b = theirs(bytes);
  if (a.ok) expect(b).toEqual(a);
  else if (b.ok) return false; // stricter than fromBinary (wrong wire type, field past its sub-message)
  return a.ok;
}

const varintBytes = (v: bigint): number[] => {
  const out: number[] = [];
  let n = BigInt.asUintN(64, v);
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
};
const tagBytes = (no: number, wt: number) => varintBytes(BigInt(no * 8 + wt));

function generator(seed: number) {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const TEXTS = ['', 'a', 'remote_address', '10.0.0.1', 'user', 'ünïcödé', '\uFEFFbom', '😀 emoji', 'x'.repeat(200), '\u0000nul', 'path_/api'];
  const U32 = [0, 1, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1];
  const U64 = [0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];
  const unknownNo = (known: number) => pick([known + 1, known + 7, 15, 16, 2047, 2048, 536_870_911]);
  /** A random unknown field (tag number, wire type and raw value bytes as @bufbuild keeps them). */
  const unknown = (known: number) => {
    const no = unknownNo(known);
    switch (int(5)) {
      case 0:
        return { no, wireType: 0, data: new Uint8Array(varintBytes(pick(U64))) };
      case 1:
        return { no, wireType: 1, data: new Uint8Array(8).fill(int(256)) };
      case 2:
        return { no, wireType: 5, data: new Uint8Array(4).fill(int(256)) };
      case 3: {
        const body = Array.from({ length: int(300) }, () => int(256));
        return { no, wireType: 2, data: new Uint8Array([...varintBytes(BigInt(body.length)), ...body]) };
      }
      default: // a group holding a varint and a nested group
        return { no, wireType: 3, data: new Uint8Array([...tagBytes(1, 0), 5, ...tagBytes(2, 3), ...tagBytes(1, 5), 1, 2, 3, 4, ...tagBytes(2, 4), ...tagBytes(no, 4)]) };
    }
  };
  const withUnknown = <T extends Message>(m: T, known: number): T => {
    if (rnd() < 0.3) m.$unknown = Array.from({ length: 1 + int(3) }, () => unknown(known));
    return m;
  };
  const descriptor = () =>
    withUnknown(
      create(RateLimitDescriptorSchema, {
        entries: Array.from({ length: int(4) }, () => withUnknown(create(RateLimitDescriptor_EntrySchema, { key: pick(TEXTS), value: pick(TEXTS) }), 2)),
        ...(rnd() < 0.3 ? { limit: withUnknown(create(RateLimitDescriptor_RateLimitOverrideSchema, { requestsPerUnit: pick(U32), unit: pick([0, 1, 2, 7, 8, -1, 2 ** 31 - 1]) }), 2) } : {}),
        ...(rnd() < 0.3 ? { hitsAddend: pick(U64) } : {}),
      }),
      3,
    );
  const request = () => withUnknown(create(RateLimitRequestSchema, { domain: pick(TEXTS), descriptors: Array.from({ length: int(4) }, descriptor), hitsAddend: pick(U32) }), 3);
  return { rnd, int, request };
}

describe('decodeRateLimitRequest', () => {
  it('decodes what @bufbuild encodes to the same values, unknown fields skipped at every level', () => {
    const g = generator(16);
    for (let i = 0; i < 3000; i++) {
      const bytes = toBinary(RateLimitRequestSchema, g.request());
      expect(agree(bytes)).toBe(true);
    }
  });

  it('merges repeated fields as protobuf does (concatenated messages)', () => {
    const g = generator(17);
    for (let i = 0; i < 500; i++) {
      const a = toBinary(RateLimitRequestSchema, g.request());
      const b = toBinary(RateLimitRequestSchema, g.request());
      expect(agree(Buffer.concat([a, b]))).toBe(true);
    }
    // A descriptor whose override and hits come in two parts merges them field by field.
    const part = (fields: number[]) => [...tagBytes(2, 2), fields.length, ...fields];
    const d = [...part([...tagBytes(1, 0), 5]), ...part([...tagBytes(2, 0), 2]), ...tagBytes(3, 2), 2, ...tagBytes(1, 0), 9, ...tagBytes(3, 2), 0];
    const merged = new Uint8Array([...tagBytes(1, 2), 1, 0x61, ...tagBytes(2, 2), d.length, ...d]);
    expect(agree(merged)).toBe(true);
    expect(decodeRateLimitRequest(merged).descriptors[0]).toEqual({ entries: [], limit: { requestsPerUnit: 5, unit: 2 }, hitsAddend: 9n });
  });

  it('decodes the wrapped uint64 hits_addend exactly, an empty wrapper as 0, and a 10-byte negative enum', () => {
    for (const v of [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const bytes = toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, { domain: 'd', descriptors: [{ entries: [{ key: 'k', value: 'v' }], hitsAddend: v }] }));
      expect(decodeRateLimitRequest(bytes).descriptors[0]?.hitsAddend).toBe(v);
      expect(agree(bytes)).toBe(true);
    }
    const override = [...tagBytes(2, 0), ...varintBytes(-1n)];
    const d = [...tagBytes(2, 2), override.length, ...override];
    const bytes = new Uint8Array([...tagBytes(2, 2), d.length, ...d]);
    expect(agree(bytes)).toBe(true);
    expect(decodeRateLimitRequest(bytes).descriptors[0]?.limit).toEqual({ requestsPerUnit: 0, unit: -1 });
  });

  it('refuses every truncation and never accepts what fromBinary refuses among random corruptions', () => {
    const g = generator(18);
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const bytes = toBinary(RateLimitRequestSchema, g.request());
      for (let n = 0; n < bytes.length; n++) if (!agree(bytes.subarray(0, n))) refused += 1;
      for (let k = 0; k < 20; k++) {
        const bad = Uint8Array.from(bytes);
        if (bad.length === 0) break;
        for (let m = 1 + g.int(3); m > 0; m--) bad[g.int(bad.length)] = g.int(256);
        agree(bad);
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('refuses malformed bytes with a reason', () => {
    const refuses = (bytes: number[], reason: RegExp) => {
      expect(() => decodeRateLimitRequest(new Uint8Array(bytes))).toThrow(reason);
    };
    const str = (no: number, body: number[]) => [...tagBytes(no, 2), body.length, ...body];
    refuses([0x0a, 0x05, 0x61], /premature EOF/); // length past the end
    refuses([0x18, 0x80], /premature EOF/); // truncated varint
    refuses([0x18, ...new Array<number>(10).fill(0x80), 0x01], /invalid varint/);
    refuses([0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /illegal tag/); // tag over 5 bytes
    refuses([0x80, 0x80, 0x80, 0x80, 0x10, 0x00], /illegal tag/); // tag over uint32
    refuses([0x00, 0x00], /illegal tag: field no 0/);
    refuses([0x0e], /illegal tag: field no 1 wire type 6/);
    refuses([0x24], /cant skip wire type 4/); // end group without a start
    refuses([...tagBytes(9, 3), ...tagBytes(8, 4)], /invalid end group tag/);
    refuses([...tagBytes(9, 3), ...tagBytes(1, 0), 1], /premature EOF/); // group never ends
    for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      refuses(str(1, bad), /invalid UTF-8/);
      const entry = str(1, [...str(1, [0x6b]), ...str(2, bad)]);
      refuses(str(2, entry), /invalid UTF-8/);
      expect(theirs(new Uint8Array(str(2, entry))).ok).toBe(false);
    }
    // A known field with another wire type (fromBinary reads it as its own type anyway).
    refuses([0x08, 0x01], /field 1: wire type 0, expected 2/);
    refuses([0x1a, 0x01, 0x00], /field 3: wire type 2, expected 0/);
    refuses(str(2, [...tagBytes(3, 0), 5]), /field 3: wire type 0, expected 2/);
    // A field that runs past the end of its sub-message.
    refuses(str(2, [...tagBytes(1, 2), 4, 0x0a, 0x01]), /premature EOF/);
  });

  it('accepts a Uint8Array that is not a Buffer, at an offset', () => {
    const bytes = toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, { domain: 'api', descriptors: [{ entries: [{ key: 'user', value: 'ü' }] }] }));
    const inner = new Uint8Array(bytes.length + 3);
    inner.set(bytes, 3);
    expect(plain(decodeRateLimitRequest(inner.subarray(3)))).toEqual(plain(fromBinary(RateLimitRequestSchema, bytes)));
  });
});
