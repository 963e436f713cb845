/** Run reports alone: an ended run is stamped, saved, its watchers told once and dropped, and counted. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRunHistory, type RunRecord } from '../../../src/jobs/history.js';
import { createRunReport } from '../../../src/jobs/run-report.js';
import type { Storage } from '../../../src/storage/storage.js';
import { silentLogger } from '../../support/temp.js';

describe('run report', () => {
  it('an ended run is stamped, saved, told to its watchers once, and counted by job, kind and status', async () => {
    const storage = { ready: false, transport: { insert: () => Promise.reject(new Error('down')), query: async () => [] } } as unknown as Storage;
    const history = createRunHistory({ storage, logger: silentLogger() });
    const metrics = new Registry();
    const events: unknown[] = [];
    const report = createRunReport({ history, pipeline: { consume: async (batch) => void events.push(batch) }, logger: silentLogger(), metrics });
    const record = { id: 'r1', jobName: 'j', kind: 'retention', params: {}, trigger: 'manual', status: 'running', attempt: 1, correlationId: 'c', startedAt: Date.now() - 1_000, endedAt: 0, error: '', message: '', result: {} } as unknown as RunRecord;
    const seen: string[] = [];
    const run = { record, listeners: new Set([(r: RunRecord) => void seen.push(r.status)]) };
    report.started(record);
    record.status = 'succeeded';
    report.ended(run);
    expect(record.endedAt).toBeGreaterThan(0);
    expect(seen).toEqual(['succeeded']);
    expect(run.listeners.size).toBe(0);
    expect((await history.get('r1'))?.status).toBe('succeeded');
    expect(events).toHaveLength(2);
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_job_runs_total{job="j",kind="retention",status="succeeded"} 1');
    expect(text).toMatch(/heimdall_job_last_success_timestamp_seconds\{job="j",kind="retention"\} \d/);
    expect(text).toContain('heimdall_job_run_duration_seconds_count{job="j",kind="retention"} 1');
  });
});
