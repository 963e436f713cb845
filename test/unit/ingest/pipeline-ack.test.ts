/** When `consume` resolves: once the rows are stored (ack: stored), once they are in the durable queue (ack: queued). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tracesToRows } from '../../../src/ingest/otlp/traces.js';
import { createTestStorage, type TestStorage } from '../../support/embedded-storage.js';
import { createTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { traceRequest } from '../../support/otlp-requests.js';

let store: TestStorage | undefined;
let t: TestPipeline | undefined;

afterEach(async () => {
  await t?.stop();
  await store?.stop();
  t = store = undefined;
}, 60_000);

/** Storage not started yet (it refuses writes), and a started pipeline over it that retries every 200 ms at most. */
async function downStorageAnd(ack: 'stored' | 'queued'): Promise<{ store: TestStorage; t: TestPipeline }> {
  store = createTestStorage();
  // ack: stored waits for storage as long as the test needs, not the 8 s the exporters get.
  t = createTestPipeline(store.storage, { ack, retry: { initial_interval: '50ms', max_interval: '200ms', max_elapsed: '10m' } });
  await t.pipeline.start();
  return { store, t };
}

const retries = async (p: TestPipeline) => (await p.metrics.getSingleMetric('heimdall_exporter_retries_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
const spansOf = (s: TestStorage, service: string) => s.rows('SELECT 1 FROM otel_traces WHERE ServiceName = {s:String}', { s: service });

describe('pipeline.consume acknowledgement', () => {
  it('ack: stored resolves only once the rows are stored, waiting while storage refuses them', async () => {
    const { store, t } = await downStorageAnd('stored');
    let settled = false;
    const stored = t.pipeline.consume({ conversion: tracesToRows(traceRequest('ack-stored', 4)) }).finally(() => (settled = true));
    // The batch was written and refused at least twice (storage is not started): still not acknowledged.
    await vi.waitFor(async () => expect(await retries(t)).toBeGreaterThanOrEqual(2), { timeout: 30_000, interval: 50 });
    expect(settled).toBe(false);
    await store.storage.start();
    await stored;
    // Resolved: the rows are there, no waiting.
    expect(await spansOf(store, 'ack-stored')).toHaveLength(4);
  }, 180_000);

  it('ack: queued resolves once the rows are in the durable queue, before storage can take them; they are stored later', async () => {
    const { store, t } = await downStorageAnd('queued');
    await t.pipeline.consume({ conversion: tracesToRows(traceRequest('ack-queued', 4)) });
    expect(t.pipeline.load().queue).toMatchObject({ records: 1 });
    expect(t.pipeline.load().queue?.bytes).toBeGreaterThan(0);
    await store.storage.start();
    await vi.waitFor(async () => expect(await spansOf(store, 'ack-queued')).toHaveLength(4), { timeout: 120_000, interval: 200 });
  }, 180_000);
});
