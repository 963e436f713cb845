/** The system check's queue score: fill and memory, and 0 while the durable queue is stalled on its disk. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';
import type { PipelineLoad } from '../../../src/ingest/pipeline/pipeline.js';
import { createSystemCheck } from '../../../src/jobs/kinds/system-check.js';
import type { TaskContext } from '../../../src/jobs/kinds/kind.js';
import type { Storage } from '../../../src/storage/storage.js';
import { silentLogger } from '../../support/temp.js';

/** Runs one on-demand system check over `load`; storage counts as not ready (it is not what is scored here). */
async function check(load: PipelineLoad): Promise<{ scores: Record<string, number>; notes: Record<string, string> }> {
  const run = createSystemCheck({
    storage: { ready: false } as Storage,
    pipeline: { load: () => load },
    pingRedis: undefined,
    dataPaths: [],
    reporter: createHealthRegistry().register('system-check'),
    reportsReadiness: () => false,
    metrics: new Registry(),
  });
  const ctx: TaskContext = { runId: 'r', jobName: '', correlationId: 'c', signal: new AbortController().signal, progress: () => undefined, logger: silentLogger() };
  return (await run({}, ctx)).result as { scores: Record<string, number>; notes: Record<string, string> };
}

describe('system check: queue score', () => {
  it('scores an empty, healthy queue 100 and a stalled one 0, saying why', async () => {
    const queue = { bytes: 0, capacity: 1 << 30, records: 0, stalled: undefined };
    expect((await check({ memoryBytes: 0, memoryLimit: 1 << 29, queue })).scores.queue).toBe(100);
    const stalled = await check({ memoryBytes: 0, memoryLimit: 1 << 29, queue: { ...queue, records: 1234, stalled: 'waiting for disk space: cannot write the checkpoint (plan a batch): ENOSPC; retrying in 2 s' } });
    expect(stalled.scores.queue).toBe(0);
    expect(stalled.notes.queue).toContain('stalled: waiting for disk space: cannot write the checkpoint (plan a batch): ENOSPC');
    expect(stalled.notes.queue).toContain('1234 records');
  });
});
