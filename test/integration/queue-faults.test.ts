/**
 * ack: queued under disk faults, end to end: a disk that fills up (a real, small tmpfs as the queue
 * directory) and flipped bytes in the queue's segments. Nothing acknowledged is lost but the damaged
 * records, nothing sticks.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { headerSalt, scanSegment, segmentFirst, segmentLayout } from '../../src/ingest/pipeline/wal.js';
import { createEmbeddedTransport } from '../../src/storage/embedded.js';
import { startAgentProcess, writeAgentConfig } from '../support/agent-process.js';
import { startTestAgent } from '../support/agent.js';
import { startClickHouseHttp } from '../support/clickhouse-http.js';
import { encodeTraces, traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { canMountTmpfs, mountTmpfs, type Tmpfs } from '../support/tmpfs.js';
import { sleep, until } from '../support/wait.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Posts one OTLP/HTTP request of `spans` spans; resolves with its status, the span ids and the refusal message. */
async function post(url: string, service: string, spans: number): Promise<{ status: number; ids: string[]; message: string }> {
  const ids: string[] = [];
  const body = encodeTraces(traceRequest(service, spans, (_k, span) => ids.push(hex(span.spanId))));
  const res = await fetch(`${url}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } }).catch(() => undefined);
  if (!res) return { status: 0, ids, message: 'connection failed' };
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { status: res.status, ids, message: res.status === 200 ? '' : fromBinary(StatusSchema, bytes).message };
}

const queueSize = async (adminUrl: string): Promise<string | undefined> => (await (await fetch(`${adminUrl}/metrics`)).text()).match(/^heimdall_exporter_queue_size (\d+)/m)?.[1];

describe.runIf(canMountTmpfs())('ack: queued on a full disk (tmpfs)', () => {
  const mounts: Tmpfs[] = [];
  afterEach(() => {
    for (const m of mounts.splice(0)) m.unmount();
  });

  it('never acknowledges a write that did not complete: kill -9 under load on a full disk, grow it, restart: every acknowledged span is stored once', async () => {
    const disk = mountTmpfs('12m');
    mounts.push(disk);
    const dir = tempDir();
    const config = writeAgentConfig(dir.path, { ingest: { ack: 'queued', queue: { path: join(disk.path, 'queue') }, batch: { max_delay: '50ms', max_rows: 2000 } } });
    const first = await startAgentProcess(config);
    const url = `http://127.0.0.1:${first.ports.otlp_http}`;
    const acked: string[] = [];
    const refusals: string[] = [];
    let ackedAfterFull = 0;
    let stop = false;
    const sender = async (): Promise<void> => {
      while (!stop) {
        const r = await post(url, 'full-disk', 100);
        if (r.status === 0) return;
        if (r.status === 200) {
          acked.push(...r.ids);
          if (refusals.length > 0) ackedAfterFull += 1;
        } else {
          expect(r.status).toBe(503);
          refusals.push(r.message);
          await sleep(20);
        }
      }
    };
    const senders = [sender(), sender(), sender(), sender()];
    // Load until the disk has been full and the queue took data again after it (or a minute passed).
    await until(() => refusals.length > 0 && ackedAfterFull >= 20, 60_000, 'the disk to fill').catch(() => undefined);
    first.child.kill('SIGKILL');
    stop = true;
    await Promise.all(senders);
    await first.exited;
    disk.resize('64m');

    const second = await startAgentProcess(config);
    await until(async () => (await queueSize(`http://127.0.0.1:${second.ports.admin}`)) === '0', 60_000, 'the queue to drain');
    await second.stop();
    const transport = await createEmbeddedTransport({ path: join(dir.path, 'data') });
    const rows = await transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = 'full-disk' GROUP BY SpanId");
    await transport.close();
    const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
    const missing = acked.filter((id) => counts.get(id) === undefined);
    console.log(`full disk + kill -9: ${acked.length} spans acknowledged, ${refusals.length} requests refused (${[...new Set(refusals)].slice(0, 2).join(' | ')}), ${ackedAfterFull} acknowledged after the first refusal; ${rows.length} distinct spans stored, ${missing.length} acknowledged missing`);
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.every((m) => /durable queue write failed: .*ENOSPC/.test(m))).toBe(true);
    expect(missing).toEqual([]);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    // The queue freed its own stored segments and took data again while the disk was still small.
    expect(ackedAfterFull).toBeGreaterThanOrEqual(20);
    dir.cleanup();
  }, 180_000);

  it('with ClickHouse down fills the disk, restarts on the full disk, drains by itself when ClickHouse is back, then takes data again', async () => {
    const disk = mountTmpfs('12m');
    mounts.push(disk);
    const dir = tempDir();
    const ch = await startClickHouseHttp(join(dir.path, 'ch'));
    await ch.down();
    const overrides = {
      ingest: { ack: 'queued', queue: { path: join(disk.path, 'queue'), segment_size: '1MiB' }, retry: { initial_interval: '20ms', max_interval: '200ms' } },
      storage: { clickhouse: { url: ch.url }, retry: { initial_interval: '50ms', max_interval: '200ms' } },
    };
    const acked: string[] = [];
    const a = await startTestAgent(overrides);
    let refusal = '';
    for (let i = 0; i < 2_000 && !refusal; i++) {
      const r = await post(a.otlpHttpUrl, 'full-restart', 100);
      if (r.status === 200) acked.push(...r.ids);
      else refusal = r.message;
    }
    expect(refusal).toMatch(/durable queue write failed: .*ENOSPC/);
    // Stalled on its disk: failed, so the strict readiness is off at once; the pod-facing one stays on.
    const queue = a.agent.health.component('queue');
    expect(queue?.state).toBe('failed');
    expect(queue?.reason).toMatch(/ENOSPC/);
    expect((await fetch(`${a.adminUrl}/readyz/strict`)).status).toBe(503);
    expect((await fetch(`${a.adminUrl}/readyz`)).status).toBe(200);
    expect(a.agent.pipeline.load().queue?.stalled).toMatch(/ENOSPC/);
    await a.stop();

    // Restart while the disk is still full of queued data, then ClickHouse comes back.
    const b = await startTestAgent(overrides);
    try {
      await ch.up();
      await until(async () => (await queueSize(b.adminUrl)) === '0', 60_000, 'the queue to drain');
      const rows = await b.agent.storage.transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = 'full-restart' GROUP BY SpanId");
      const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
      console.log(`full disk + restart: ${acked.length} spans acknowledged, ${rows.length} distinct spans stored`);
      expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
      expect(rows).toHaveLength(acked.length);
      expect((await post(b.otlpHttpUrl, 'full-restart', 100)).status).toBe(200);
      await until(() => b.agent.health.component('queue')?.state === 'ready', 15_000, 'the queue to report ready');
    } finally {
      await b.stop();
      await ch.close();
      dir.cleanup();
    }
  }, 180_000);
});

describe('ack: queued with flipped bytes in its segments', () => {
  it('a flipped byte in a record header, a payload, the first and the last record of a segment: after a restart every other acknowledged span is stored exactly once', async () => {
    const dir = tempDir();
    const queueDir = join(dir.path, 'queue');
    const ch = await startClickHouseHttp(join(dir.path, 'ch'));
    await ch.down();
    try {
      const overrides = {
        ingest: { ack: 'queued', queue: { path: queueDir, segment_size: '256KiB', max_size: '16MiB' }, retry: { initial_interval: '20ms', max_interval: '200ms' } },
        storage: { clickhouse: { url: ch.url }, retry: { initial_interval: '50ms', max_interval: '200ms' } },
      };
      // Requests acknowledged while ClickHouse is down stay in the queue; then the agent stops.
      const a = await startTestAgent(overrides);
      const acked: string[] = [];
      for (let i = 0; i < 60; i++) {
        const r = await post(a.otlpHttpUrl, 'flipped', 100);
        expect(r.status).toBe(200);
        acked.push(...r.ids);
      }
      await a.stop();

      // One record per case: the records of each segment, in order.
      const segments = await Promise.all(
        readdirSync(queueDir).filter((n) => n.endsWith('.wal')).sort().map(async (name) => {
          const data = readFileSync(join(queueDir, name));
          const salt = headerSalt(data)?.salt;
          const layout = segmentLayout(data, segmentFirst(name), salt ? [salt] : []);
          const { records } = await scanSegment(data, layout.format, layout.dataStart, segmentFirst(name));
          // Span records only: the agent's own events (its stop, say) are queued records too.
          const spans = records.filter((r) => acked.some((id) => data.subarray(r.start, r.end).includes(id)));
          return { path: join(queueDir, name), data, records: spans };
        }),
      );
      expect(segments.length).toBeGreaterThanOrEqual(3);
      const [s0, s1, s2] = segments as [typeof segments[0], typeof segments[0], typeof segments[0]];
      const targets = [
        { name: 'record header', segment: s0, record: s0.records[2], offset: 6 },
        { name: 'payload', segment: s0, record: s0.records[4], offset: 500 },
        { name: 'first record of a segment', segment: s1, record: s1.records[0], offset: 300 },
        { name: 'last record of a segment', segment: s2, record: s2.records.at(-1), offset: 12 },
      ];
      const lost = new Set<string>();
      for (const t of targets) {
        if (!t.record) throw new Error(`no record for ${t.name}`);
        const payload = t.segment.data.subarray(t.record.start, t.record.end);
        for (const id of acked) if (payload.includes(id)) lost.add(id); // SpanId is stored as hex text
        t.segment.data[t.record.start + t.offset] = (t.segment.data[t.record.start + t.offset] ?? 0) ^ 0x04;
      }
      for (const s of segments) writeFileSync(s.path, s.data);
      expect(lost.size).toBe(400);

      await ch.up();
      const b = await startTestAgent(overrides);
      try {
        await until(async () => (await queueSize(b.adminUrl)) === '0', 60_000, 'the queue to drain');
        const rows = await b.agent.storage.transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = 'flipped' GROUP BY SpanId");
        const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
        const metrics = await (await fetch(`${b.adminUrl}/metrics`)).text();
        console.log(`flipped bytes in 4 records: ${acked.length} spans acknowledged, ${lost.size} in the damaged records, ${rows.length} distinct spans stored`);
        expect(acked.filter((id) => !lost.has(id) && counts.get(id) !== 1)).toEqual([]);
        expect(rows).toHaveLength(acked.length - lost.size);
        expect(metrics).toMatch(/^heimdall_exporter_queue_corrupt_records_total 4$/m);
        expect(readdirSync(join(queueDir, 'dead-letter')).filter((n) => n.startsWith('damaged-'))).toHaveLength(4);
      } finally {
        await b.stop();
      }
    } finally {
      await ch.close();
      dir.cleanup();
    }
  }, 120_000);
});

describe('ack: queued with a batch the engine keeps refusing', () => {
  it('splits the batch to find the request ClickHouse refuses (a retryable error, code 252), keeps it in the dead-letter folder, and stores every other span once', async () => {
    const dir = tempDir();
    const queueDir = join(dir.path, 'queue');
    const a = await startTestAgent({
      ingest: { ack: 'queued', queue: { path: queueDir, max_delay: '500ms', poison_timeout: '2s' }, retry: { initial_interval: '50ms', max_interval: '200ms' } },
      storage: { embedded: { path: join(dir.path, 'data') } },
    });
    try {
      // The real engine refuses rows of one request with TOO_MANY_PARTS (252), classed retryable, while it answers.
      const transport = a.agent.storage.transport;
      await transport.command('SET allow_custom_error_code_in_throwif = 1');
      await transport.command("ALTER TABLE otel_traces ADD CONSTRAINT refuse_poison CHECK throwIf(ServiceName = 'refused-poison', 'refused by the test', toInt32(252)) = 0");
      const acked: string[] = [];
      let poison: string[] = [];
      const sends = [];
      for (let i = 0; i < 20; i++) sends.push(post(a.otlpHttpUrl, i === 7 ? 'refused-poison' : 'refused', 50));
      for (const [i, r] of (await Promise.all(sends)).entries()) {
        expect(r.status).toBe(200);
        if (i === 7) poison = r.ids;
        else acked.push(...r.ids);
      }
      await until(async () => (await queueSize(a.adminUrl)) === '0', 60_000, 'the queue to drain');
      const rows = await transport.query<{ SpanId: string; n: string }>("SELECT SpanId, count() AS n FROM otel_traces WHERE startsWith(ServiceName, 'refused') GROUP BY SpanId");
      const counts = new Map(rows.map((r) => [r.SpanId, Number(r.n)]));
      const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
      const dead = readdirSync(join(queueDir, 'dead-letter'));
      console.log(`refused batch: ${acked.length + poison.length} spans acknowledged, ${rows.length} stored, ${poison.length} in the dead-letter folder (${dead.join(', ')}); ${metrics.match(/^heimdall_exporter_queue_split_batches_total \d+/m)?.[0]}`);
      expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
      expect(poison.filter((id) => counts.has(id))).toEqual([]);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatch(/^(\d+)-\1-otel_traces\.jsonl$/);
      expect(metrics).toMatch(/^heimdall_exporter_dead_letter_batches_total 1$/m);
      expect(a.agent.health.component('queue')?.state).toBe('ready');
    } finally {
      await a.stop();
      dir.cleanup();
    }
  }, 120_000);
});
