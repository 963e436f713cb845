/** The system check's queue and disk scores: fill and memory, 0 while the durable queue is stalled on its disk; the room left in configured byte budgets. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';
import type { PipelineLoad } from '../../../src/ingest/pipeline/pipeline.js';
import { createSystemCheck } from '../../../src/jobs/kinds/system-check.js';
import type { TaskContext } from '../../../src/jobs/kinds/kind.js';
import type { Storage } from '../../../src/storage/storage.js';
import { silentLogger } from '../../support/temp.js';

/** Runs one on-demand system check over `load`; storage counts as not ready (it is not what is scored here). */
async function check(load: PipelineLoad, budgets: ReadonlyArray<{ name: string; used: number; limit: number }> = []): Promise<{ scores: Record<string, number>; notes: Record<string, string> }> {
  const run = createSystemCheck({
    storage: { ready: false } as Storage,
    pipeline: { load: () => load },
    pingRedis: undefined,
    dataPaths: [],
    budgets: () => budgets,
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

describe('system check: disk score', () => {
  const load: PipelineLoad = { memoryBytes: 0, memoryLimit: 1 << 29 };
  it('scores a byte budget set in config: 100 up to 90% used (where the oldest data starts going), 0 at the budget', async () => {
    const limit = 1000;
    const at = async (used: number) => (await check(load, [{ name: 'embedded store', used, limit }])).scores.disk;
    expect(await at(500)).toBe(100);
    expect(await at(900)).toBe(100);
    expect(await at(950)).toBe(50);
    expect(await at(1000)).toBe(0);
    expect(await at(2000)).toBe(0);
    expect((await check(load, [{ name: 'embedded store', used: 900, limit }])).notes.disk).toBe('embedded store 90.0% of 1000 bytes used');
  });
});
