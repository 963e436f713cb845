/** OTLP protocol rules: partial success, content types, encodings, limits, malformed input. */
import { request } from 'node:http';
import { gzipSync, deflateSync } from 'node:zlib';
import { fromBinary } from '@bufbuild/protobuf';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { testClient } from '../support/grpc-client.js';
import { encodeTraces, traceRequest } from '../support/otlp-requests.js';

describe('OTLP protocol', () => {
  let t: TestAgent;
  const count = async (service: string) =>
    Number((await t.agent.storage.transport.query<{ n: string }>('SELECT count() AS n FROM otel_traces WHERE ServiceName = {s:String}', { s: service }))[0]?.n);
  const post = (path: string, body: Buffer | string, headers: Record<string, string>) => fetch(`${t.otlpHttpUrl}${path}`, { method: 'POST', body, headers });
  beforeAll(async () => {
    t = await startTestAgent({ ingest: { batch: { max_delay: '20ms' } }, server: { otlp_http: { max_body_size: '256KiB', cors_allowed_origins: ['https://app.example'] } } });
  });
  afterAll(async () => t.stop());

  it('gRPC: stores the valid spans and reports the exact rejected count in partial_success', async () => {
    const req = traceRequest('partial-grpc', 10, (i, span) => {
      if (i === 3) span.traceId = span.traceId.subarray(0, 15);
      if (i === 7) span.spanId = new Uint8Array(8);
    });
    const c = testClient(TraceService, t.grpcAddress);
    const { reply } = await c.unary('Export', ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, req);
    c.close();
    expect(reply.partialSuccess?.rejectedSpans).toBe(2n);
    expect(reply.partialSuccess?.errorMessage).toContain('resource_spans[0].scope_spans[0].spans[3]: trace_id must be 16 bytes, got 15');
    expect(reply.partialSuccess?.errorMessage).toContain('spans[7]: span_id is all zeros');
    expect(await count('partial-grpc')).toBe(8);
  });

  it('gRPC: a full success has no partial_success; malformed bytes are INVALID_ARGUMENT', async () => {
    const c = testClient(TraceService, t.grpcAddress);
    const { reply } = await c.unary('Export', ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, traceRequest('full-grpc', 3));
    expect(reply.partialSuccess).toBeUndefined();
    const err = await new Promise<ServiceError>((resolve) =>
      c.raw.makeUnaryRequest('/opentelemetry.proto.collector.trace.v1.TraceService/Export', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0x05, 0x01]), (e) => resolve(e as ServiceError)),
    );
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('malformed opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
    c.close();
  });

  it('HTTP protobuf and JSON: partial success answered in the request encoding', async () => {
    const req = traceRequest('partial-http', 4, (i, span) => {
      if (i === 0) span.traceId = new Uint8Array(16);
    });
    const proto = await post('/v1/traces', encodeTraces(req), { 'content-type': 'application/x-protobuf' });
    expect(proto.status).toBe(200);
    expect(proto.headers.get('content-type')).toBe('application/x-protobuf');
    const decoded = fromBinary(ExportTraceServiceResponseSchema, new Uint8Array(await proto.arrayBuffer()));
    expect(decoded.partialSuccess?.rejectedSpans).toBe(1n);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    // Recent timestamps: rows older than the retention TTL are dropped by ClickHouse.
    const start = (BigInt(Date.now()) * 1_000_000n).toString();
    const end = Number(BigInt(start) + 500_000_000n);
    const json = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'json-http' } }], unknownField: 1 },
          scopeSpans: [
            {
              spans: [
                { traceId: hex(new Uint8Array(16).fill(1)), spanId: hex(new Uint8Array(8).fill(2)), name: 'a', kind: 2, startTimeUnixNano: start, endTimeUnixNano: end, extra: 'ignored' },
                { trace_id: hex(new Uint8Array(16).fill(3)), span_id: hex(new Uint8Array(8).fill(4)), parent_span_id: hex(new Uint8Array(8).fill(2)), name: 'b', start_time_unix_nano: start },
                { traceId: 'abcd', spanId: hex(new Uint8Array(8).fill(5)), name: 'short id' },
              ],
            },
          ],
        },
      ],
    };
    const res = await post('/v1/traces', JSON.stringify(json), { 'content-type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ partialSuccess: { rejectedSpans: '1', errorMessage: expect.stringContaining('trace_id must be 16 bytes, got 2') } });
    const rows = await t.agent.storage.transport.query<Record<string, unknown>>("SELECT SpanName, TraceId, ParentSpanId, Duration, toUnixTimestamp64Nano(Timestamp) AS ns FROM otel_traces WHERE ServiceName = 'json-http' ORDER BY SpanName");
    expect(rows).toEqual([
      { SpanName: 'a', TraceId: '01'.repeat(16), ParentSpanId: '', Duration: String(BigInt(end) - BigInt(start)), ns: start },
      { SpanName: 'b', TraceId: '03'.repeat(16), ParentSpanId: '02'.repeat(8), Duration: '0', ns: start },
    ]);
  });

  it('round-trips summaries, exemplars, negative exponential buckets, schema URLs and log event names (OTLP/JSON)', async () => {
    const now = (BigInt(Date.now()) * 1_000_000n).toString();
    const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'json-metrics' } }] };
    const metrics = {
      resourceMetrics: [
        {
          resource,
          schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
          scopeMetrics: [
            {
              scope: { name: 'm', version: '1', attributes: [{ key: 'lib', value: { stringValue: 'x' } }], droppedAttributesCount: 2 },
              schemaUrl: 'https://scope/schema',
              metrics: [
                { name: 'rpc.duration', summary: { dataPoints: [{ timeUnixNano: now, count: '10', sum: 12.5, quantileValues: [{ quantile: 0.5, value: 1 }, { quantile: 0.99, value: 4 }] }] } },
                {
                  name: 'queue.depth',
                  gauge: {
                    dataPoints: [
                      { timeUnixNano: now, asInt: '7', exemplars: [{ timeUnixNano: now, asDouble: 7, traceId: '0a'.repeat(16), spanId: '0b'.repeat(8), filteredAttributes: [{ key: 'q', value: { stringValue: 'hi' } }] }] },
                    ],
                  },
                },
                {
                  name: 'sizes',
                  exponentialHistogram: {
                    aggregationTemporality: 1,
                    dataPoints: [{ timeUnixNano: now, count: '3', sum: -3, scale: 2, zeroCount: '1', positive: { offset: 1, bucketCounts: ['1'] }, negative: { offset: -2, bucketCounts: ['0', '1'] }, min: -2, max: 1 }],
                  },
                },
                { name: 'ratio', gauge: { dataPoints: [{ timeUnixNano: now, asDouble: 'NaN' }, { timeUnixNano: now, asDouble: '-Infinity' }] } },
                { name: '', gauge: { dataPoints: [{ timeUnixNano: now, asDouble: 1 }] } },
              ],
            },
          ],
        },
      ],
    };
    const res = await post('/v1/metrics', JSON.stringify(metrics), { 'content-type': 'application/json' });
    expect(await res.json()).toEqual({ partialSuccess: { rejectedDataPoints: '1', errorMessage: expect.stringContaining('metric name is empty') } });
    const q = <T>(sql: string) => t.agent.storage.transport.query<T>(sql);
    expect(await q("SELECT Count, Sum, ValueAtQuantiles.Quantile AS q, ValueAtQuantiles.Value AS v, ResourceSchemaUrl, ScopeSchemaUrl, ScopeAttributes, ScopeDroppedAttrCount FROM otel_metrics_summary WHERE ServiceName = 'json-metrics'")).toEqual([
      { Count: '10', Sum: 12.5, q: [0.5, 0.99], v: [1, 4], ResourceSchemaUrl: 'https://opentelemetry.io/schemas/1.26.0', ScopeSchemaUrl: 'https://scope/schema', ScopeAttributes: { lib: 'x' }, ScopeDroppedAttrCount: 2 },
    ]);
    expect(await q("SELECT isNaN(Value) AS is_nan, isInfinite(Value) AS is_inf, Value < 0 AS negative FROM otel_metrics_gauge WHERE ServiceName = 'json-metrics' AND MetricName = 'ratio' ORDER BY is_nan")).toEqual([
      { is_nan: 0, is_inf: 1, negative: 1 },
      { is_nan: 1, is_inf: 0, negative: 0 },
    ]);
    expect(await q("SELECT Value, Exemplars.TraceId AS tid, Exemplars.SpanId AS sid, Exemplars.Value AS ev, Exemplars.FilteredAttributes AS ea FROM otel_metrics_gauge WHERE ServiceName = 'json-metrics' AND MetricName = 'queue.depth'")).toEqual([
      { Value: 7, tid: ['0a'.repeat(16)], sid: ['0b'.repeat(8)], ev: [7], ea: [{ q: 'hi' }] },
    ]);
    expect(await q("SELECT Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, NegativeOffset, NegativeBucketCounts, AggregationTemporality, Min, Max FROM otel_metrics_exp_histogram WHERE ServiceName = 'json-metrics'")).toEqual([
      { Scale: 2, ZeroCount: '1', PositiveOffset: 1, PositiveBucketCounts: ['1'], NegativeOffset: -2, NegativeBucketCounts: ['0', '1'], AggregationTemporality: 1, Min: -2, Max: 1 },
    ]);
    const logs = { resourceLogs: [{ resource, schemaUrl: 'https://r', scopeLogs: [{ scopeLogs: undefined, logRecords: [{ observedTimeUnixNano: now, eventName: 'user.login', body: { intValue: '42' }, flags: 257 }] }] }] };
    expect((await post('/v1/logs', JSON.stringify(logs), { 'content-type': 'application/json' })).status).toBe(200);
    expect(await q("SELECT EventName, Body, TraceFlags, ResourceSchemaUrl, toUnixTimestamp64Nano(Timestamp) AS ns FROM otel_logs WHERE ServiceName = 'json-metrics'")).toEqual([
      { EventName: 'user.login', Body: '42', TraceFlags: 1, ResourceSchemaUrl: 'https://r', ns: now },
    ]);
  });

  it('HTTP: gzip and deflate bodies are accepted', async () => {
    for (const [enc, zip] of [['gzip', gzipSync], ['deflate', deflateSync]] as const) {
      const res = await post('/v1/traces', zip(encodeTraces(traceRequest(`zip-${enc}`, 5))), { 'content-type': 'application/x-protobuf', 'content-encoding': enc });
      expect(res.status).toBe(200);
      expect(await count(`zip-${enc}`)).toBe(5);
    }
  });

  it('HTTP: 415 for other content types, 405 for other methods, 400 for malformed bodies and encodings', async () => {
    const bad = await post('/v1/traces', 'x', { 'content-type': 'text/plain' });
    expect(bad.status).toBe(415);
    expect(await bad.text()).toContain('unsupported Content-Type "text/plain"');
    const get = await fetch(`${t.otlpHttpUrl}/v1/traces`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toContain('POST');
    const proto = await post('/v1/logs', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff]), { 'content-type': 'application/x-protobuf' });
    expect(proto.status).toBe(400);
    const st = fromBinary(StatusSchema, new Uint8Array(await proto.arrayBuffer()));
    expect(st.code).toBe(status.INVALID_ARGUMENT);
    expect(st.message).toContain('malformed protobuf opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
    const json = await post('/v1/metrics', '{"resourceMetrics": [', { 'content-type': 'application/json' });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { message: string }).message).toContain('malformed JSON');
    const typed = await post('/v1/traces', JSON.stringify({ resourceSpans: 'nope' }), { 'content-type': 'application/json' });
    expect(typed.status).toBe(400);
    const enc = await post('/v1/traces', 'x', { 'content-type': 'application/x-protobuf', 'content-encoding': 'br' });
    expect(enc.status).toBe(400);
    expect(((await enc.arrayBuffer()).byteLength)).toBeGreaterThan(0);
    const corrupt = await post('/v1/traces', Buffer.from('not gzip at all'), { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' });
    expect(corrupt.status).toBe(400);
  });

  it('HTTP: 413 for oversized bodies and for gzip bombs, measured after decompression', async () => {
    const big = Buffer.alloc(300 * 1024, 1);
    const tooBig = await post('/v1/traces', big, { 'content-type': 'application/x-protobuf' });
    expect(tooBig.status).toBe(413);
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024)); // ~50 KiB on the wire, 50 MiB inflated
    expect(bomb.length).toBeLessThan(256 * 1024);
    const res = await post('/v1/traces', bomb, { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' });
    expect(res.status).toBe(413);
    expect(fromBinary(StatusSchema, new Uint8Array(await res.arrayBuffer())).message).toContain('decompressed body exceeds the limit of 262144 bytes');
    // A chunked body (no Content-Length) over the limit also gets a 413, not a reset connection.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 5; i++) req.write(Buffer.alloc(100 * 1024, 1));
      req.end();
    });
    expect(chunked).toBe(413);
    // Still healthy, and still ingesting.
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
    const ok = await post('/v1/traces', encodeTraces(traceRequest('after-bomb', 2)), { 'content-type': 'application/x-protobuf' });
    expect(ok.status).toBe(200);
  });

  it('HTTP: CORS for configured origins only', async () => {
    const pre = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    const other = await post('/v1/traces', encodeTraces(traceRequest('cors', 1)), { 'content-type': 'application/x-protobuf', origin: 'https://evil.example' });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('survives a burst of truncated and random bodies', async () => {
    const valid = encodeTraces(traceRequest('fuzz', 20));
    const statuses = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const cut = valid.subarray(0, Math.floor(Math.random() * valid.length));
      const noise = Buffer.from(cut);
      for (let k = 0; k < 5; k++) noise[Math.floor(Math.random() * noise.length)] = Math.floor(Math.random() * 256);
      const res = await post('/v1/traces', i % 2 ? cut : noise, { 'content-type': 'application/x-protobuf' });
      statuses.add(res.status);
      await res.arrayBuffer();
    }
    expect([...statuses].every((s) => s === 200 || s === 400)).toBe(true);
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
  });
});
