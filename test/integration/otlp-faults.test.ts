/** Nothing acknowledged is lost: ClickHouse outages, memory pressure, and kill -9 with ack: queued. */
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { create, fromBinary } from '@bufbuild/protobuf';
import { status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../src/gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { KeyValueSchema } from '../../src/gen/opentelemetry/proto/common/v1/common_pb.js';
import { ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { connect } from '../../src/cli/client.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { createEmbeddedTransport } from '../../src/storage/embedded.js';
import { startAgentProcess, writeAgentConfig } from '../support/agent-process.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { startClickHouseHttp, type ClickHouseHttp } from '../support/clickhouse-http.js';
import { testClient } from '../support/grpc-client.js';
import { encodeTraces, traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Sends `requests` OTLP/HTTP requests of `spans` spans, retrying 503s as an exporter does; returns acknowledged span ids. */
async function sendWithRetries(url: string, service: string, requests: number, spans: number, onEach?: (i: number) => Promise<void>): Promise<string[]> {
  const acked: string[] = [];
  for (let i = 0; i < requests; i++) {
    await onEach?.(i);
    const ids: string[] = [];
    const body = encodeTraces(traceRequest(service, spans, (_k, span) => ids.push(hex(span.spanId))));
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${url}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } }).catch(() => undefined);
      if (res?.status === 200) {
        acked.push(...ids);
        break;
      }
      if (res && res.status !== 503) throw new Error(`unexpected ${res.status}`);
      if (res) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      if (attempt > 200) throw new Error('never acknowledged');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return acked;
}

/** Runs fn against an agent on the server transport, its ClickHouse endpoint started (down when asked), then cleans up. */
async function withServerAgent(overrides: Record<string, any>, options: { down?: boolean }, fn: (t: TestAgent, ch: ClickHouseHttp) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const ch = await startClickHouseHttp(join(dir.path, 'ch'));
  if (options.down) await ch.down();
  const ingest = { ...(overrides.ingest as Record<string, unknown> | undefined) };
  if (ingest.ack === 'queued') ingest.queue = { path: join(dir.path, 'queue'), ...(ingest.queue as Record<string, unknown> | undefined) };
  const t = await startTestAgent({ ...overrides, ingest, storage: { clickhouse: { url: ch.url }, retry: { initial_interval: '50ms', max_interval: '200ms' }, ...(overrides.storage as object | undefined) } });
  try {
    await fn(t, ch);
  } finally {
    await t.stop();
    await ch.close();
    dir.cleanup();
  }
}

describe('ClickHouse outage with ack: stored', () => {
  it('answers retryable errors while down, and stores every acknowledged span exactly once', async () => {
    await withServerAgent({ ingest: { batch: { max_delay: '20ms' }, retry: { initial_interval: '20ms', max_interval: '100ms', max_elapsed: '300ms' } } }, {}, async (t, ch) => {
      const acked = await sendWithRetries(t.otlpHttpUrl, 'outage', 30, 50, async (i) => {
        if (i === 10) {
          await ch.down();
          setTimeout(() => void ch.up(), 1_500);
        }
      });
      expect(acked).toHaveLength(1500);
      const rows = await t.agent.storage.transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = 'outage' GROUP BY SpanId");
      const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
      expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
      const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/^heimdall_exporter_retries_total\{table="otel_traces"\} [1-9]/m);
      expect(metrics).toMatch(/^heimdall_receiver_refused_spans_total\{transport="http"\} [1-9]/m);
    });
  });

  it('refuses with UNAVAILABLE + RetryInfo (gRPC) and 503 + Retry-After (HTTP) above the memory limit', async () => {
    await withServerAgent({ ingest: { memory: { limit: '320KiB', spike: '32KiB' }, batch: { max_delay: '10ms' }, retry: { max_elapsed: '10s' } } }, { down: true }, async (t, ch) => {
        // Requests (~30 KB, ~270 KB to decode) are held while storage is down: their rows (~30 KB) stay in memory.
        // Sent one after another, each once the one before is held, until one passes the soft limit (288 KiB) and is refused.
        const buffered = async () => Number((await (await fetch(`${t.adminUrl}/metrics`)).text()).match(/^heimdall_memory_limiter_buffered_bytes (\d+)/m)?.[1]);
        const held: Array<Promise<Response>> = [];
        let refused: Response | undefined;
        for (let i = 0; i < 5 && !refused; i++) {
          const before = await buffered();
          const sent = fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body: encodeTraces(traceRequest('pressure', 100)), headers: { 'content-type': 'application/x-protobuf' } });
          let answered = false;
          const isHeld = (async () => {
            while (!answered && (await buffered()) <= before) await new Promise((r) => setTimeout(r, 50));
            return undefined;
          })();
          refused = await Promise.race([sent, isHeld]);
          answered = true;
          if (!refused) held.push(sent);
        }
        expect(held.length).toBeGreaterThan(0);
        expect(refused?.status).toBe(503);
        if (!refused) return;
        expect(refused.headers.get('retry-after')).toBe('1');
        expect(fromBinary(StatusSchema, new Uint8Array(await refused.arrayBuffer())).message).toContain('memory limit');
        const c = testClient(TraceService, t.grpcAddress);
        const err = (await c.unary('Export', ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, traceRequest('pressure', 100)).catch((e: unknown) => e)) as ServiceError;
        expect(err.code).toBe(status.UNAVAILABLE);
        const details = fromBinary(StatusSchema, err.metadata.get('grpc-status-details-bin')[0] as Buffer);
        expect(details.details[0]?.typeUrl).toBe('type.googleapis.com/google.rpc.RetryInfo');
        expect(fromBinary(RetryInfoSchema, details.details[0]?.value ?? new Uint8Array()).retryDelay?.seconds).toBe(1n);
        c.close();
        await ch.up();
        for (const h of held) expect((await h).status).toBe(200);
    });
  });
});

describe('requests that can never fit', () => {
  it('are answered 413 (HTTP) and INVALID_ARGUMENT (gRPC), which exporters do not retry: alone over the memory limit, or over the durable queue', async () => {
    const post = (t: TestAgent, body: Buffer, headers: Record<string, string> = {}) => fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf', ...headers } });
    await withServerAgent({ ingest: { memory: { limit: '512KiB', spike: '128KiB' } } }, {}, async (t) => {
      // ~60 KB on the wire, ~530 KB to decode: over the 512 KiB limit, refused before its body is read.
      const overMemory = await post(t, encodeTraces(traceRequest('too-large', 200)));
      expect(overMemory.status).toBe(413);
      expect(overMemory.headers.get('retry-after')).toBeNull();
      expect(fromBinary(StatusSchema, new Uint8Array(await overMemory.arrayBuffer())).message).toMatch(/more than ingest\.memory\.limit \(524288 bytes\)/);
      const c = testClient(TraceService, t.grpcAddress);
      const err = (await c.unary('Export', ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, traceRequest('too-large', 200)).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain('ingest.memory.limit');
      c.close();
      expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toMatch(/^heimdall_memory_limiter_too_large_total 2$/m);
      // Nothing else is affected: a request that fits is stored.
      expect((await post(t, encodeTraces(traceRequest('fits', 5)))).status).toBe(200);
    });
    await withServerAgent({ ingest: { ack: 'queued', queue: { max_size: '256KiB', segment_size: '64KiB' } } }, {}, async (t) => {
      // One span with a 300 KB attribute, in a ~1 KB gzip body: its row is larger than the 256 KiB queue.
      const request = traceRequest('too-large-for-queue', 1);
      request.resourceSpans[0]?.scopeSpans[0]?.spans[0]?.attributes.push(create(KeyValueSchema, { key: 'big', value: { value: { case: 'stringValue', value: 'x'.repeat(300 * 1024) } } }));
      const overQueue = await post(t, gzipSync(encodeTraces(request)), { 'content-encoding': 'gzip' });
      expect(overQueue.status).toBe(413);
      expect(fromBinary(StatusSchema, new Uint8Array(await overQueue.arrayBuffer())).message).toMatch(/more than the durable queue holds \(ingest\.queue\.max_size, 262144 bytes\)/);
      expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toMatch(/^heimdall_exporter_queue_too_large_total 1$/m);
      expect((await post(t, encodeTraces(traceRequest('fits', 5)))).status).toBe(200);
    });
  });
});

describe('ack: queued', () => {
  it('acknowledges while ClickHouse is down and stores everything exactly once when it returns', async () => {
    await withServerAgent({ ingest: { ack: 'queued', batch: { max_delay: '20ms' }, retry: { initial_interval: '20ms', max_interval: '100ms' } } }, { down: true }, async (t, ch) => {
        const acked = await sendWithRetries(t.otlpHttpUrl, 'queued', 20, 50);
        expect(acked).toHaveLength(1000);
        await ch.up();
        await expect
          .poll(async () => (await (await fetch(`${t.adminUrl}/metrics`)).text()).match(/^heimdall_exporter_queue_size (\d+)/m)?.[1], { timeout: 15_000 })
          .toBe('0');
        const rows = await t.agent.storage.transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = 'queued' GROUP BY SpanId");
        const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
        expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
        expect(rows).toHaveLength(1000);
    });
  });

  it('acknowledges events while ClickHouse is down and stores each exactly once when it returns', async () => {
    await withServerAgent({ ingest: { ack: 'queued', batch: { max_delay: '20ms' }, retry: { initial_interval: '20ms', max_interval: '100ms' } } }, { down: true }, async (t, ch) => {
      const client = connect({ addr: t.grpcAddress });
      const ids: string[] = [];
      for (let b = 0; b < 10; b++) {
        const res = await client.unary(EventService.method.writeEvents, { events: Array.from({ length: 50 }, (_, i) => ({ eventType: 'outage', source: 'queued-events', severity: Severity.INFO, message: `e-${b}-${i}` })) });
        ids.push(...res.ids);
      }
      client.close();
      expect(ids).toHaveLength(500);
      await ch.up();
      await expect.poll(async () => (await (await fetch(`${t.adminUrl}/metrics`)).text()).match(/^heimdall_exporter_queue_size (\d+)/m)?.[1], { timeout: 15_000 }).toBe('0');
      const rows = await t.agent.storage.transport.query<{ Id: string; n: string }>("SELECT Id, count() AS n FROM heimdall_events WHERE Source = 'queued-events' GROUP BY Id");
      expect(rows.map((r) => r.Id).sort()).toEqual([...ids].sort());
      expect(rows.every((r) => r.n === '1')).toBe(true);
    });
  });

  it('refuses with a retryable error when the queue is full, and keeps what it acknowledged', async () => {
    await withServerAgent({ ingest: { ack: 'queued', queue: { max_size: '256KiB', segment_size: '64KiB' }, batch: { max_delay: '20ms' } } }, { down: true }, async (t, ch) => {
        const statuses: number[] = [];
        const acked: string[] = [];
        // Until the queue has refused a few requests (its bound is in encoded bytes, not requests).
        for (let i = 0; i < 200 && statuses.filter((s) => s === 503).length < 3; i++) {
          const ids: string[] = [];
          const res = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body: encodeTraces(traceRequest('full', 20, (_k, span) => ids.push(hex(span.spanId)))), headers: { 'content-type': 'application/x-protobuf' } });
          statuses.push(res.status);
          if (res.status === 200) acked.push(...ids);
          else expect(fromBinary(StatusSchema, new Uint8Array(await res.arrayBuffer())).message).toContain('durable queue is full');
        }
        expect(statuses).toContain(200);
        expect(statuses).toContain(503);
        await ch.up();
        await expect.poll(async () => (await (await fetch(`${t.adminUrl}/metrics`)).text()).match(/^heimdall_exporter_queue_size (\d+)/m)?.[1], { timeout: 15_000 }).toBe('0');
        const rows = await t.agent.storage.transport.query<{ SpanId: string }>("SELECT SpanId FROM otel_traces WHERE ServiceName = 'full'");
        expect(rows.map((r) => r.SpanId).sort()).toEqual([...acked].sort());
        // Space is given back once stored: the queue takes data again.
        const again = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body: encodeTraces(traceRequest('full', 20)), headers: { 'content-type': 'application/x-protobuf' } });
        expect(again.status).toBe(200);
    });
  });

  it('survives kill -9 under load: after restart every acknowledged span is stored exactly once', async () => {
    const dir = tempDir();
    const config = writeAgentConfig(dir.path, { ingest: { ack: 'queued', queue: { path: join(dir.path, 'queue') }, batch: { max_delay: '50ms', max_rows: 2000 } } });
    const first = await startAgentProcess(config);
    const acked: string[] = [];
    const url = `http://127.0.0.1:${first.ports.otlp_http}/v1/traces`;
    // Several senders in parallel; kill -9 lands while requests are in flight.
    const sender = async () => {
      for (;;) {
        const ids: string[] = [];
        const body = encodeTraces(traceRequest('killed', 100, (_k, span) => ids.push(hex(span.spanId))));
        const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } }).catch(() => undefined);
        if (!res) return;
        if (res.status === 200) acked.push(...ids);
      }
    };
    const senders = [sender(), sender(), sender(), sender()];
    // Killed once more than a thousand spans were acknowledged (a wait by count, not by time: the machine may be loaded).
    await until(() => acked.length > 1000, 60_000, 'a thousand acknowledged spans');
    first.child.kill('SIGKILL');
    await Promise.all(senders);
    await first.exited;
    expect(acked.length).toBeGreaterThan(1000);

    const second = await startAgentProcess(config);
    await expect
      .poll(async () => (await (await fetch(`http://127.0.0.1:${second.ports.admin}/metrics`)).text()).match(/^heimdall_exporter_queue_size (\d+)/m)?.[1], { timeout: 20_000 })
      .toBe('0');
    await second.stop();
    const transport = await createEmbeddedTransport({ path: join(dir.path, 'data') });
    const rows = await transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = 'killed' GROUP BY SpanId");
    await transport.close();
    const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
    console.log(`kill -9: ${acked.length} spans acknowledged before the kill, ${rows.length} distinct spans stored after restart`);
    expect(acked.filter((id) => counts.get(id) === undefined)).toEqual([]);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    dir.cleanup();
  }, 90_000);
});
