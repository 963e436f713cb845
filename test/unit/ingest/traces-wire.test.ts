/**
 * The OTLP trace hot path (wire bytes -> RowBinary) against the generic path (fromBinary ->
 * tracesToRows -> processors -> RowBinary): byte-for-byte equal rows, counts, reasons and span
 * summaries, on hand-written edge cases, on random requests, and on random corruptions of them.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { prng } from '../../support/prng.js';
import { ExportTraceServiceRequestSchema } from '../../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import type { AnyValueSchema } from '../../../src/gen/opentelemetry/proto/common/v1/common_pb.js';
import type { Span_SpanKind, Status_StatusCode } from '../../../src/gen/opentelemetry/proto/trace/v1/trace_pb.js';
import { encodeTables } from '../../../src/ingest/pipeline/formats.js';
import { tracesToRows } from '../../../src/ingest/otlp/traces.js';
import { TRACES } from '../../../src/storage/tables.js';
import { encodeTraceRequest, type TraceProcessors } from '../../../src/ingest/otlp/traces-wire.js';
import { createEnrichment } from '../../../src/ingest/processors/enrichment.js';
import { createRedaction, DEFAULT_KEY_PATTERNS } from '../../../src/ingest/processors/redaction.js';
import { SpanSummaries } from '../../../src/ingest/red-metrics.js';

type RequestInit = MessageInitShape<typeof ExportTraceServiceRequestSchema>;
type AnyInit = MessageInitShape<typeof AnyValueSchema>;

const redaction = createRedaction({ keys: DEFAULT_KEY_PATTERNS, values: ['internal-\\d+'], builtins: true, replacement: '[REDACTED]' });
const enrichment = createEnrichment({ POD: 'k8s.pod.name', NS: 'k8s.namespace.name' }, { POD: 'pod-1', NS: 'prod' });
const configs: Array<{ name: string; processors: TraceProcessors; process: boolean }> = [
  { name: 'no processors', processors: { resourceDefaults: {}, redaction: undefined }, process: false },
  { name: 'enrichment and redaction', processors: { resourceDefaults: enrichment.attributes, redaction }, process: true },
];

/** The generic path's result for the same bytes, or undefined when fromBinary refuses them. */
function generic(bytes: Uint8Array, processors: boolean) {
  let request;
  try {
    request = fromBinary(ExportTraceServiceRequestSchema, bytes);
  } catch {
    return undefined;
  }
  const c = tracesToRows(request);
  if (processors) {
    enrichment.process(c);
    redaction.process(c);
  }
  // Span summaries (RED metric labels) are taken after the processors: they show no secret either.
  const spans = new SpanSummaries();
  for (const r of c.tables.get(TRACES.name) ?? []) spans.add(r.ServiceName as string, r.SpanName as string, r.SpanKind as string, r.StatusCode as string, Number(r.Duration) / 1e9);
  const data = encodeTables(c).find((p) => p.table === TRACES.name)?.data ?? Buffer.alloc(0);
  return { data, accepted: c.accepted, rejected: c.rejected, reasons: c.reasons, spans };
}

/** Asserts the hot path equals the generic path on `bytes`; returns whether the hot path took them. */
function expectSame(bytes: Uint8Array): boolean {
  let took = false;
  for (const cfg of configs) {
    const fast = encodeTraceRequest(bytes, cfg.processors);
    const slow = generic(bytes, cfg.process);
    if (fast === undefined) continue; // left to the generic path: equal by construction
    took = true;
    // The hot path never takes what the generic decoder refuses.
    expect(slow, `${cfg.name}: hot path accepted bytes fromBinary refuses`).toBeDefined();
    if (!slow) return took;
    expect({ ...fast, data: fast.data.toString('hex') }, cfg.name).toEqual({ ...slow, data: slow.data.toString('hex') });
  }
  return took;
}

const str = (s: string): AnyInit => ({ value: { case: 'stringValue', value: s } });
const kv = (key: string, value: AnyInit) => ({ key, value });
const id = (n: number, len: number) => Uint8Array.from({ length: len }, (_, i) => (n * 31 + i * 7 + 1) & 0xff);
const bytesOf = (init: RequestInit) => toBinary(ExportTraceServiceRequestSchema, create(ExportTraceServiceRequestSchema, init));

describe('OTLP trace hot path', () => {
  it('equals the generic path on every field, value type and validation rule', () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const values: AnyInit[] = [
      str('plain'),
      str('ünïcødé 🚀 text'),
      str(''),
      { value: { case: 'boolValue', value: true } },
      { value: { case: 'boolValue', value: false } },
      { value: { case: 'intValue', value: -9_223_372_036_854_775_808n } },
      { value: { case: 'intValue', value: 9_007_199_254_740_993n } },
      { value: { case: 'intValue', value: 42n } },
      { value: { case: 'doubleValue', value: 1.5 } },
      { value: { case: 'doubleValue', value: Number.POSITIVE_INFINITY } },
      { value: { case: 'doubleValue', value: Number.NaN } },
      { value: { case: 'doubleValue', value: -0 } },
      { value: { case: 'bytesValue', value: Uint8Array.of(0, 1, 255) } },
      { value: { case: 'arrayValue', value: { values: [str('a'), { value: { case: 'intValue', value: 7n } }] } } },
      { value: { case: 'kvlistValue', value: { values: [kv('inner', str('x'))] } } },
      {},
    ];
    const bytes = bytesOf({
      resourceSpans: [
        {
          resource: { attributes: [kv('service.name', str('checkout')), kv('service.name', str('second')), kv('k8s.pod.name', str('from-data')), kv('db.password', str('hunter2-long-secret'))] },
          scopeSpans: [
            {
              scope: { name: 'lib', version: '1.2.3' },
              spans: [
                {
                  traceId: id(1, 16),
                  spanId: id(2, 8),
                  parentSpanId: id(3, 8),
                  traceState: 'vendor=x',
                  name: 'GET /ünï',
                  kind: 2,
                  startTimeUnixNano: now,
                  endTimeUnixNano: now + 1_500_000n,
                  attributes: [
                    ...values.map((v, i) => kv(`attr.${String.fromCharCode(122 - i)}`, v)),
                    kv('dup', str('first')),
                    kv('dup', str('last')),
                    kv('__proto__', str('not a prototype')),
                    kv('constructor', str('plain key')),
                    kv('10', str('ten')),
                    kv('9', str('nine')),
                    kv('http.request.header.authorization', str('Bearer abcdefghijklmnop')),
                    kv('note', str('call me at internal-1234 with card 4111 1111 1111 1111')),
                  ],
                  events: [
                    { timeUnixNano: now + 10n, name: 'exception', attributes: [kv('exception.message', str('boom')), kv('token', str('secret-token-value'))] },
                    { timeUnixNano: 0n, name: '' },
                  ],
                  links: [{ traceId: id(4, 16), spanId: id(5, 8), traceState: 'a=b', attributes: [kv('link.kind', str('follows'))] }, { traceId: id(6, 3), spanId: new Uint8Array() }],
                  status: { code: 2, message: 'failed: see https://user:pa55word@example.com/x' },
                },
                // Edge values: unknown kind and status code, end before start, times past 2262, no parent.
                { traceId: id(7, 16), spanId: id(8, 8), kind: 17 as Span_SpanKind, status: { code: 9 as Status_StatusCode }, startTimeUnixNano: 18_446_744_073_709_551_615n, endTimeUnixNano: 5n },
                { traceId: id(9, 16), spanId: id(10, 8), startTimeUnixNano: 9_223_372_036_854_775_807n, endTimeUnixNano: 18_446_744_073_709_551_615n },
                // Invalid spans, one per rule.
                { traceId: id(11, 15), spanId: id(12, 8) },
                { traceId: new Uint8Array(16), spanId: id(12, 8) },
                { traceId: id(13, 16), spanId: id(14, 7) },
                { traceId: id(13, 16), spanId: new Uint8Array(8) },
                { traceId: id(13, 16), spanId: id(14, 8), parentSpanId: id(15, 4) },
                { traceId: id(16, 16), spanId: id(17, 8) },
                { traceId: new Uint8Array(3), spanId: id(12, 8) },
              ],
            },
            { spans: [{ traceId: id(18, 16), spanId: id(19, 8), name: 'no scope' }] },
          ],
        },
        { scopeSpans: [{ scope: { name: 'no resource' }, spans: [{ traceId: id(20, 16), spanId: id(21, 8) }] }] },
        {},
      ],
    });
    expect(expectSame(bytes)).toBe(true);
    const fast = encodeTraceRequest(bytes, configs[1]!.processors)!;
    expect(fast.accepted).toBe(6);
    expect(fast.rejected).toBe(6);
    expect(fast.reasons).toHaveLength(5);
  });

  it('redacts secrets in span names, service names and status messages, in the rows and in the span summaries', () => {
    const bytes = bytesOf({
      resourceSpans: [
        {
          resource: { attributes: [kv('service.name', str('svc https://deploy:hunter2hunter2@registry'))] },
          scopeSpans: [{ spans: [{ traceId: id(1, 16), spanId: id(2, 8), name: 'GET /login?user=ada&api_key=sk_live_0123456789', status: { code: 2, message: 'denied: Bearer abcdefghijklmnopqrstuvwxyz' } }] }],
        },
      ],
    });
    expect(expectSame(bytes)).toBe(true);
    const fast = encodeTraceRequest(bytes, configs[1]!.processors)!;
    const data = fast.data.toString('latin1');
    for (const secret of ['hunter2hunter2', 'sk_live_0123456789', 'abcdefghijklmnopqrstuvwxyz']) expect(data).not.toContain(secret);
    expect([fast.spans.services[0], fast.spans.names[0]]).toEqual(['svc https://deploy:[REDACTED]@registry', 'GET /login?user=ada&api_key=[REDACTED]']);
  });

  it('leaves malformed, merged and invalid-UTF-8 requests to the generic path', () => {
    const valid = bytesOf({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: id(1, 16), spanId: id(2, 8), name: 'x' }] }] }] });
    expect(encodeTraceRequest(valid, configs[0]!.processors)).toBeDefined();
    // Truncated.
    expect(encodeTraceRequest(valid.subarray(0, valid.length - 1), configs[0]!.processors)).toBeUndefined();
    // A group wire type at the top level.
    expect(encodeTraceRequest(Uint8Array.of(0x0b, 0x0c), configs[0]!.processors)).toBeUndefined();
    // A known field with the wrong wire type (resource_spans as a varint).
    expect(encodeTraceRequest(Uint8Array.of(0x08, 0x01), configs[0]!.processors)).toBeUndefined();
    // Invalid UTF-8 in a span name (field 5 of Span).
    const span = Uint8Array.of(0x0a, 16, ...id(1, 16), 0x12, 8, ...id(2, 8), 0x2a, 2, 0xc3, 0x28);
    const bad = Uint8Array.of(0x0a, span.length + 4, 0x12, span.length + 2, 0x12, span.length, ...span);
    expect(encodeTraceRequest(bad, configs[0]!.processors)).toBeUndefined();
    expect(generic(bad, false)).toBeUndefined();
    // Two status fields on one span merge under protobuf rules: generic path.
    const twoStatus = Uint8Array.of(...span.subarray(0, span.length - 4), 0x7a, 2, 0x18, 2, 0x7a, 3, 0x12, 1, 0x61);
    const req = Uint8Array.of(0x0a, twoStatus.length + 4, 0x12, twoStatus.length + 2, 0x12, twoStatus.length, ...twoStatus);
    expect(encodeTraceRequest(req, configs[0]!.processors)).toBeUndefined();
    expect(generic(req, false)?.accepted).toBe(1);
  });

  it('leaves over-long tags and scope attributes nested past the recursion limit to the generic path', () => {
    const valid = bytesOf({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: id(1, 16), spanId: id(2, 8) }] }] }] });
    // The first tag (field 1, length-delimited) written in 6 bytes instead of 1.
    const longTag = Uint8Array.of(0x8a, 0x80, 0x80, 0x80, 0x80, 0x00, ...valid.subarray(1));
    expect(generic(longTag, false)).toBeUndefined();
    expect(encodeTraceRequest(longTag, configs[0]!.processors)).toBeUndefined();
    // Around the recursion limit, for attributes at every level that has them: the two paths agree.
    let refused = 0;
    for (let depth = 40; depth <= 52; depth++) {
      let deep: AnyInit = str('leaf');
      for (let i = 0; i < depth; i++) deep = { value: { case: 'arrayValue', value: { values: [deep] } } };
      const attributes = [kv('deep', deep)];
      const span = { traceId: id(1, 16), spanId: id(2, 8) };
      for (const bytes of [
        bytesOf({ resourceSpans: [{ resource: { attributes }, scopeSpans: [{ spans: [span] }] }] }),
        bytesOf({ resourceSpans: [{ scopeSpans: [{ scope: { name: 's', attributes }, spans: [span] }] }] }),
        bytesOf({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...span, attributes }] }] }] }),
        bytesOf({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...span, events: [{ name: 'e', attributes }], links: [{ traceId: id(3, 16), spanId: id(4, 8), attributes }] }] }] }] }),
      ]) {
        expectSame(bytes);
        if (generic(bytes, false) === undefined) refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('orders attribute maps as the generic path does: long lists, repeated keys (the last value kept) and index keys first', () => {
    const rnd = prng(0x0a77);
    const keys = ['b', 'a', '10', '2', 'service.name', 'a', '0', '01', 'z', '4294967295', '4294967294'];
    for (const length of [1, 2, 10, 63, 64, 65, 200, 1000]) {
      const attributes = Array.from({ length }, (_, i) => kv(i < keys.length ? (keys[i] ?? '') : `k${Math.floor(rnd() * length)}`, str(`v${i}`)));
      const resource = { attributes: [...attributes].reverse() };
      const spans = [{ traceId: id(1, 16), spanId: id(2, 8), name: 's', attributes, events: [{ name: 'e', attributes }], links: [{ traceId: id(3, 16), spanId: id(4, 8), attributes }] }];
      expect(expectSame(bytesOf({ resourceSpans: [{ resource, scopeSpans: [{ spans }, { spans }] }] })), `${length} attributes`).toBe(true);
    }
  });

  it('equals the generic path on random requests (fuzz)', () => {
    const rnd = prng(0x5eed);
    let took = 0;
    for (let n = 0; n < 300; n++) if (expectSame(bytesOf(randomRequest(rnd)))) took++;
    expect(took).toBe(300);
  });

  it('equals the generic path on requests drawn from thousands of texts, repeated and colliding in the text cache (fuzz)', () => {
    const rnd = prng(0xcafe);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789./-_ =?&:ü';
    const word = () => Array.from({ length: Math.floor(rnd() * 80) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
    const texts = [...TEXTS, ...Array.from({ length: 8000 }, word), ...Array.from({ length: 50 }, (_, i) => `Bearer ${word()}${i}xxxxxxxxxxxx`)];
    let took = 0;
    for (let n = 0; n < 400; n++) if (expectSame(bytesOf(randomRequest(rnd, texts)))) took++;
    expect(took).toBe(400);
  });

  it('never takes what the generic decoder refuses, and equals it otherwise, on corrupted requests (fuzz)', () => {
    const rnd = prng(0xbad);
    let refused = 0;
    for (let n = 0; n < 1500; n++) {
      const bytes = Uint8Array.from(bytesOf(randomRequest(rnd)));
      const edits = 1 + Math.floor(rnd() * 3);
      for (let e = 0; e < edits && bytes.length > 0; e++) {
        const at = Math.floor(rnd() * bytes.length);
        bytes[at] = rnd() < 0.5 ? Math.floor(rnd() * 256) : (bytes[at] ?? 0) ^ (1 << Math.floor(rnd() * 8));
      }
      const cut = rnd() < 0.2 ? bytes.subarray(0, Math.floor(rnd() * bytes.length)) : bytes;
      expectSame(cut);
      if (generic(cut, false) === undefined) refused++;
    }
    // The corpus does exercise malformed input.
    expect(refused).toBeGreaterThan(100);
  });
});


const TEXTS = ['', 'a', 'service.name', 'GET /x', 'ünï', 'Bearer abcdefghijklmnopqrst', 'internal-77', '123', '0', 'x'.repeat(70), 'token', 'db.password', '4111111111111111'];

function randomRequest(rnd: () => number, texts: readonly string[] = TEXTS): RequestInit {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const count = (max: number) => Math.floor(rnd() * (max + 1));
  const text = () => pick(texts);
  const anyValue = (depth: number): AnyInit => {
    switch (count(7)) {
      case 0:
        return {};
      case 1:
        return { value: { case: 'boolValue', value: rnd() < 0.5 } };
      case 2:
        return { value: { case: 'intValue', value: BigInt.asIntN(64, BigInt(Math.floor(rnd() * 2 ** 53)) * BigInt(pick([1, -1, 4096, 1 << 20]))) } };
      case 3:
        return { value: { case: 'doubleValue', value: pick([0, -0, 1.25, -3e300, Number.NaN, Number.NEGATIVE_INFINITY, rnd()]) } };
      case 4:
        return depth > 2 ? str(text()) : { value: { case: 'arrayValue', value: { values: Array.from({ length: count(3) }, () => anyValue(depth + 1)) } } };
      case 5:
        return depth > 2 ? str(text()) : { value: { case: 'kvlistValue', value: { values: Array.from({ length: count(3) }, () => kv(text(), anyValue(depth + 1))) } } };
      case 6:
        return { value: { case: 'bytesValue', value: id(count(50), count(5)) } };
      default:
        return str(text());
    }
  };
  const attrs = (max: number) => Array.from({ length: count(max) }, () => kv(text(), anyValue(0)));
  const someId = (len: number) => (rnd() < 0.05 ? new Uint8Array(pick([0, len - 1, len])) : id(count(1000), rnd() < 0.03 ? len + 1 : len));
  const time = () => pick([0n, 1n, BigInt(Date.now()) * 1_000_000n + BigInt(count(1e6)), 18_446_744_073_709_551_615n, 9_223_372_036_854_775_808n]);
  return {
    resourceSpans: Array.from({ length: count(3) }, () => ({
      ...(rnd() < 0.8 ? { resource: { attributes: attrs(4) } } : {}),
      schemaUrl: text(),
      scopeSpans: Array.from({ length: count(3) }, () => ({
        ...(rnd() < 0.8 ? { scope: { name: text(), version: text(), attributes: attrs(2) } } : {}),
        spans: Array.from({ length: count(5) }, () => ({
          traceId: someId(16),
          spanId: someId(8),
          parentSpanId: rnd() < 0.5 ? new Uint8Array() : someId(8),
          traceState: text(),
          name: text(),
          kind: count(7),
          flags: count(1000),
          startTimeUnixNano: time(),
          endTimeUnixNano: time(),
          attributes: attrs(6),
          droppedAttributesCount: count(3),
          events: Array.from({ length: count(2) }, () => ({ timeUnixNano: time(), name: text(), attributes: attrs(2) })),
          links: Array.from({ length: count(2) }, () => ({ traceId: someId(16), spanId: someId(8), traceState: text(), attributes: attrs(2), flags: count(3) })),
          ...(rnd() < 0.7 ? { status: { code: count(3), message: text() } } : {}),
        })),
      })),
    })),
  };
}
