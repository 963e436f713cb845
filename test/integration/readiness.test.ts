/** A sidecar first does no harm: a backend outage or a full disk never takes the pod out of service, and loses nothing acknowledged. */
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { startClickHouseHttp } from '../support/clickhouse-http.js';
import { encodeTraces, traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { canMountTmpfs, mountTmpfs } from '../support/tmpfs.js';
import { sleep, until } from '../support/wait.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Polls /readyz every 50 ms until stopped; returns every status seen. */
function watchReadyz(t: TestAgent): { stop(): Promise<number[]> } {
  const seen: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      seen.push((await fetch(`${t.adminUrl}/readyz`).catch(() => undefined))?.status ?? 0);
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}

/** Sends `requests` OTLP/HTTP requests of `spans` spans of `service`; every one must be acknowledged. Returns the span ids. */
async function sendAcked(t: TestAgent, service: string, requests: number, spans: number): Promise<string[]> {
  const acked: string[] = [];
  for (let i = 0; i < requests; i++) {
    const ids: string[] = [];
    const res = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body: encodeTraces(traceRequest(service, spans, (_k, span) => ids.push(hex(span.spanId)))), headers: { 'content-type': 'application/x-protobuf' } });
    expect(res.status).toBe(200);
    acked.push(...ids);
  }
  return acked;
}

const strictStatus = async (t: TestAgent) => (await fetch(`${t.adminUrl}/readyz/strict`)).status;
const queueSize = async (t: TestAgent) => (await (await fetch(`${t.adminUrl}/metrics`)).text()).match(/^heimdall_exporter_queue_size (\d+)/m)?.[1];
const overall = async (t: TestAgent) => (await (await fetch(`${t.adminUrl}/status`)).json()) as { status: string; ready: boolean; strictReady: boolean; degraded: string[] };

/** Every acknowledged span id is stored exactly once. */
async function expectStoredOnce(t: TestAgent, service: string, acked: readonly string[]): Promise<void> {
  const rows = await t.agent.storage.transport.query<{ SpanId: string; n: string }>('SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = {service:String} GROUP BY SpanId', { service });
  const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
  expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
  expect(rows).toHaveLength(acked.length);
}

describe('readiness and storage through outages, full disks and budgets', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('server transport, endpoint stopped mid-run: /readyz stays 200, /readyz/strict and /status say why, data lands once the endpoint is back', async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const ch = await startClickHouseHttp(join(dir.path, 'ch'));
    cleanups.push(() => ch.close());
    const t = await startTestAgent({
      storage: { clickhouse: { url: ch.url }, retry: { initial_interval: '50ms', max_interval: '200ms' }, health_check_interval: '200ms' },
      ingest: { ack: 'queued', queue: { path: join(dir.path, 'queue'), max_delay: '50ms' }, retry: { initial_interval: '20ms', max_interval: '100ms' } },
      // The system check gates strict readiness too: run each second, so a score taken during the outage is not kept 30 s.
      jobs: { system_check: { schedule: '* * * * * *' } },
    });
    cleanups.push(() => t.stop());
    const probes = watchReadyz(t);
    const acked = await sendAcked(t, 'outage', 5, 50);
    await ch.down();
    acked.push(...(await sendAcked(t, 'outage', 10, 50)));
    await until(async () => (await strictStatus(t)) === 503, 10_000, '/readyz/strict to report the outage');
    // A failed insert may say so first ("reachable, but inserts fail"); the next health check (200 ms) says why.
    const during = await until(async () => {
      const o = await overall(t);
      return /storage: failed \(server storage at .* is not available/.test(o.degraded.join('; ')) ? o : undefined;
    }, 10_000, '/status to say storage is not available');
    expect(during).toMatchObject({ status: 'degraded', ready: true, strictReady: false });
    // Storage says so itself, and can be awaited (no polling).
    expect(() => t.agent.storage.requireReady('a test read')).toThrow('storage is not ready: a test read; retry later');
    let back: boolean | undefined;
    const waiting = t.agent.storage.whenReady().then((ready) => (back = ready));
    await sleep(300);
    expect(back).toBeUndefined();
    await ch.up();
    await waiting;
    expect(back).toBe(true);
    await until(async () => (await queueSize(t)) === '0', 20_000, 'the queue to drain');
    await until(async () => (await strictStatus(t)) === 200, 10_000, '/readyz/strict to recover');
    const seen = await probes.stop();
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.filter((s) => s !== 200)).toEqual([]);
    await expectStoredOnce(t, 'outage', acked);
  });

  it.runIf(canMountTmpfs())("embedded store's disk full: /readyz stays 200, storage reports the failing inserts, data lands once space is back", async () => {
    const disk = mountTmpfs('96m');
    cleanups.push(() => disk.unmount());
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const t = await startTestAgent({
      storage: { embedded: { path: join(disk.path, 'data') }, health_check_interval: '200ms' },
      ingest: { ack: 'queued', queue: { path: join(dir.path, 'queue'), max_delay: '50ms' }, retry: { initial_interval: '20ms', max_interval: '200ms' } },
      jobs: { system_check: { schedule: '* * * * * *' } },
    });
    cleanups.push(() => t.stop());
    const probes = watchReadyz(t);
    const acked = await sendAcked(t, 'full-disk', 2, 50);
    await until(async () => (await queueSize(t)) === '0', 20_000, 'the first spans to be stored');
    disk.fill();
    acked.push(...(await sendAcked(t, 'full-disk', 10, 200)));
    const failing = await until(async () => (await overall(t)).degraded.find((d) => d.startsWith('storage: failed (reachable, but inserts fail')), 20_000, 'storage to report failing inserts');
    expect(failing).toMatch(/not enough space|No space left/i);
    expect(await strictStatus(t)).toBe(503);
    expect((await overall(t)).ready).toBe(true);
    disk.unfill();
    await until(async () => (await queueSize(t)) === '0', 30_000, 'the queue to drain once space is back');
    await until(async () => (await strictStatus(t)) === 200, 15_000, '/readyz/strict to recover');
    const seen = await probes.stop();
    expect(seen.filter((s) => s !== 200)).toEqual([]);
    await expectStoredOnce(t, 'full-disk', acked);
  }, 90_000);

  it('an embedded store at its size budget refuses inserts (retryable, naming the setting), scores the disk by the budget, and stays ready', async () => {
    const t = await startTestAgent({
      storage: { embedded: { max_size: '16KiB' }, health_check_interval: '200ms' },
      ingest: { retry: { initial_interval: '20ms', max_interval: '50ms', max_elapsed: '300ms' } },
      jobs: { system_check: { schedule: '* * * * * *' } },
    });
    cleanups.push(() => t.stop());
    await until(async () => (await (await fetch(`${t.adminUrl}/metrics`)).text()).match(/^heimdall_storage_bytes (\d+)/m)?.[1] !== '0', 10_000, 'a measurement of the store');
    // Inserts go on until the store reaches its budget, then are refused.
    let res: Response | undefined;
    for (let i = 0; i < 50 && res?.status !== 503; i++) res = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body: encodeTraces(traceRequest('budget', 50)), headers: { 'content-type': 'application/x-protobuf' } });
    if (!res) throw new Error('no request sent');
    expect(res.status).toBe(503);
    expect(fromBinary(StatusSchema, new Uint8Array(await res.arrayBuffer())).message).toMatch(/its limit storage\.embedded\.max_size is 16384/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    const check = await until(async () => (await overall(t)).degraded.find((d) => d.startsWith('system-check: failed')), 10_000, 'the system check to score the budget');
    expect(check).toMatch(/disk 0 \(.*embedded store \d+\.\d% of 16384 bytes used/);
    expect((await overall(t)).degraded.join('; ')).toMatch(/storage: failed \(reachable, but inserts are refused: the embedded store holds \d+ bytes, its limit storage\.embedded\.max_size is 16384/);
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
    expect(await strictStatus(t)).toBe(503);
    expect(t.logs.some((l) => l.level === 'error' && String(l.msg).includes('only its newest partitions are left'))).toBe(true);
  });

  it('stores a batch whose spans fall on 120 different days (more partitions than one ClickHouse insert takes by default), on both transports', async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const day = 86_400_000_000_000n;
    // One chdb data directory per process: the embedded agent first, then the server behind the HTTP endpoint.
    for (const transport of ['embedded', 'server']) {
      const ch = transport === 'server' ? await startClickHouseHttp(join(dir.path, 'ch')) : undefined;
      if (ch) cleanups.push(() => ch.close());
      const t = await startTestAgent({ storage: { ...(ch && { clickhouse: { url: ch.url } }), retention: { traces: '365d' } }, ingest: { retry: { max_elapsed: '2s' } } });
      cleanups.push(() => t.stop());
      const req = traceRequest('many-days', 120);
      for (const [i, span] of (req.resourceSpans[0]?.scopeSpans[0]?.spans ?? []).entries()) {
        span.startTimeUnixNano -= BigInt(i) * day;
        span.endTimeUnixNano -= BigInt(i) * day;
      }
      const res = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', body: encodeTraces(req), headers: { 'content-type': 'application/x-protobuf' } });
      expect(res.status).toBe(200);
      const [row] = await t.agent.storage.transport.query<{ n: string; days: string }>("SELECT count() AS n, uniqExact(toDate(Timestamp)) AS days FROM otel_traces WHERE ServiceName = 'many-days'");
      expect(row).toEqual({ n: '120', days: '120' });
      await t.stop();
    }
  });
});
