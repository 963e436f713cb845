/** The writer's retry budget: max_elapsed counts from when a batch began to wait, when it says so. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createWriter } from '../../../src/ingest/pipeline/writer.js';
import { silentLogger } from '../../support/temp.js';
import type { StorageTransport } from '../../../src/storage/transport.js';

/** A writer over a storage that refuses every insert (unreachable), with max_elapsed 1 s and 10 ms backoffs. */
function refusingWriter() {
  const metrics = new Registry();
  const writer = createWriter({
    transport: (): StorageTransport => {
      throw new Error('never reached: storage refuses first');
    },
    refusal: () => 'storage is unreachable',
    logger: silentLogger(),
    metrics,
    initialIntervalMs: 10,
    maxIntervalMs: 10,
    maxElapsedMs: 1_000,
  });
  const retries = async () => (await metrics.getSingleMetric('heimdall_exporter_retries_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
  return { writer, retries };
}

describe('writer', () => {
  it('gives up once max_elapsed has passed since `since`: a batch that waited that long gets one attempt', async () => {
    const { writer, retries } = refusingWriter();
    const result = await writer.write('otel_traces', Buffer.from('x'), 1, 'token-1', undefined, Date.now() - 1_000);
    expect(result.status).toBe('failed');
    expect(await retries()).toBe(0);
    writer.shutdown();
  });

  it('without `since`, retries until max_elapsed after the write began', async () => {
    const { writer, retries } = refusingWriter();
    const t0 = Date.now();
    const result = await writer.write('otel_traces', Buffer.from('x'), 1, 'token-2');
    expect(result.status).toBe('failed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
    expect(await retries()).toBeGreaterThan(0);
    writer.shutdown();
  });
});
