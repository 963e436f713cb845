/** The pipeline's way to storage over embedded storage: memory held until acknowledged, refusals, the durable queue's bound, flush on shutdown. */
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { tracesToRows } from '../../../src/ingest/otlp/traces.js';
import { RequestTooLarge, RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { encodeTables } from '../../../src/ingest/pipeline/formats.js';
import { createMemoryLimiter, type MemoryLimiter } from '../../../src/ingest/pipeline/limiter.js';
import { createStoring, type Storing } from '../../../src/ingest/pipeline/storing.js';
import { mergeTrees as merge } from '../../support/tree.js';
import { traceRequest } from '../../support/otlp-requests.js';
import { startEmbeddedStorage, type TestStorage } from '../../support/embedded-storage.js';
import { silentLogger, tempDir } from '../../support/temp.js';

const MiB = 1024 * 1024;

let store: TestStorage;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  store = await startEmbeddedStorage();
}, 120_000);
afterAll(() => store.stop(), 60_000);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
}, 60_000);

/** A started Storing over the file's storage, with `ingest` overrides, a 4 MiB limiter (soft limit 3 MiB) and its registry. */
async function storingWith(ingest: Record<string, unknown> = {}): Promise<{ storing: Storing; limiter: MemoryLimiter; metrics: Registry }> {
  const dir = tempDir('heimdall-queue-');
  const config = validateConfig({ ingest: merge({ queue: { path: dir.path } }, ingest) }).ingest;
  const metrics = new Registry();
  const limiter = createMemoryLimiter({ limitBytes: 4 * MiB, spikeBytes: MiB, metrics });
  const storing = createStoring({ config, storage: store.storage, limiter, logger: silentLogger(), metrics, health: createHealthRegistry() });
  await storing.start();
  cleanups.push(dir.cleanup, () => storing.shutdown());
  return { storing, limiter, metrics };
}

const spans = (service: string, n: number) => encodeTables(tracesToRows(traceRequest(service, n)));
const spansOf = (service: string) => store.rows('SELECT 1 FROM otel_traces WHERE ServiceName = {s:String}', { s: service });
const counter = async (metrics: Registry, name: string) => (await metrics.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;

describe('storing (ack: stored)', () => {
  it('holds the rows bytes in memory until they are stored, then gives them back; no queue', async () => {
    const { storing, limiter } = await storingWith();
    const parts = spans('storing-held', 3);
    const bytes = parts.reduce((n, p) => n + p.data.length, 0);
    const stored = storing.store(parts, false);
    expect(limiter.buffered).toBe(bytes);
    await stored;
    expect(limiter.buffered).toBe(0);
    expect(await spansOf('storing-held')).toHaveLength(3);
    expect(storing.queueLoad()).toBeUndefined();
  }, 60_000);

  it('refuses rows not admitted while memory is full, holding nothing; takes admitted rows on top of it', async () => {
    const { storing, limiter } = await storingWith();
    limiter.acquire(3.5 * MiB);
    await expect(storing.store(spans('storing-refused', 2), false)).rejects.toThrow(RetryableError);
    expect(limiter.buffered).toBe(3.5 * MiB);
    await storing.store(spans('storing-admitted', 2), true);
    expect(limiter.buffered).toBe(3.5 * MiB);
    expect(await spansOf('storing-refused')).toEqual([]);
    expect(await spansOf('storing-admitted')).toHaveLength(2);
  }, 60_000);

  it('takes empty parts at once, storing nothing', async () => {
    const { storing, metrics } = await storingWith();
    await storing.store([{ table: 'otel_traces', data: Buffer.alloc(0), rows: 0 }], false);
    await storing.store([], false);
    expect(await metrics.getSingleMetricAsString('heimdall_batch_rows')).not.toContain('heimdall_batch_rows_count');
  }, 60_000);

  it('flushes a waiting batch on shutdown: the store resolves with its rows stored', async () => {
    // A batch would wait ten minutes to fill.
    const { storing } = await storingWith({ batch: { max_delay: '10m' } });
    const stored = storing.store(spans('storing-flushed', 2), false);
    await storing.shutdown();
    await stored;
    expect(await spansOf('storing-flushed')).toHaveLength(2);
  }, 60_000);
});

describe('storing (ack: queued)', () => {
  it('refuses for good rows whose record can never fit the durable queue, before holding memory, and counts them', async () => {
    const { storing, limiter, metrics } = await storingWith({ ack: 'queued', queue: { max_size: '1MiB', segment_size: '256KiB' } });
    const big = [{ table: 'heimdall_events', data: Buffer.alloc(MiB + 1, 0x20), rows: 1 }];
    await expect(storing.store(big, true)).rejects.toThrow(RequestTooLarge);
    await expect(storing.store(big, true)).rejects.toThrow(/^the request's rows take \d+ bytes, more than the durable queue holds \(ingest\.queue\.max_size, 1048576 bytes\)$/);
    expect(await counter(metrics, 'heimdall_exporter_queue_too_large_total')).toBe(2);
    expect(limiter.buffered).toBe(0);
    expect(storing.queueLoad()).toMatchObject({ bytes: 0, capacity: MiB, records: 0 });
  }, 60_000);

  it('resolves once the rows are queued, reporting them in the queue load, and stores them, counting the insert in heimdall_batch_rows', async () => {
    const { storing, limiter, metrics } = await storingWith({ ack: 'queued', queue: { max_delay: '10ms' } });
    await storing.store(spans('storing-queued', 3), false);
    expect(limiter.buffered).toBe(0);
    expect(storing.queueLoad()?.capacity).toBe(1024 * MiB);
    await expect.poll(() => spansOf('storing-queued'), { timeout: 60_000, interval: 100 }).toHaveLength(3);
    await expect.poll(() => storing.queueLoad()?.records, { timeout: 60_000, interval: 100 }).toBe(0);
    const text = await metrics.getSingleMetricAsString('heimdall_batch_rows');
    expect(text).toMatch(/^heimdall_batch_rows_count\{table="otel_traces"\} 1$/m);
    expect(text).toMatch(/^heimdall_batch_rows_sum\{table="otel_traces"\} 3$/m);
  }, 120_000);
});
