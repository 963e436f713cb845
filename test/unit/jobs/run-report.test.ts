/** Run reports alone: an ended run is stamped, saved, its watchers told once and dropped, and counted. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRunHistory, type RunRecord } from '../../../src/jobs/history.js';
import { createRunReport } from '../../../src/jobs/run-report.js';
import type { Storage } from '../../../src/storage/storage.js';
import { runWithContext } from '../../../src/telemetry/context.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { silentLogger } from '../../support/temp.js';

/** A report over a history that cannot store, with its events and log lines captured. */
function harness() {
  const storage = { ready: false, transport: { insert: () => Promise.reject(new Error('down')), query: async () => [] } } as unknown as Storage;
  const history = createRunHistory({ storage, logger: silentLogger() });
  const metrics = new Registry();
  // One submit per event (its rows are encoded by the pipeline, not here).
  const events: unknown[] = [];
  const lines: string[] = [];
  const logger = createLogger({ destination: { write: (line: string) => void lines.push(line) } });
  const report = createRunReport({ history, pipeline: { consume: async (batch) => void events.push(batch) }, logger, metrics });
  return { report, metrics, events, lines };
}

const recordOf = (over: Partial<RunRecord>): RunRecord =>
  ({ id: 'r1', jobName: 'j', kind: 'retention', params: {}, trigger: 'schedule', status: 'running', attempt: 1, correlationId: 'c-1', startedAt: Date.now() - 1_000, endedAt: 0, error: '', message: '', result: {}, ...over }) as unknown as RunRecord;

/** Runs a record through start and end with `status`. */
function endWith(report: ReturnType<typeof harness>['report'], record: RunRecord, status: RunRecord['status'], error = ''): void {
  report.started(record);
  record.status = status;
  record.error = error;
  report.ended({ record, listeners: new Set() });
}

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
    expect(text).toContain('heimdall_job_runs_total{job_name="j",kind="retention",status="succeeded"} 1');
    expect(text).toMatch(/heimdall_job_last_success_timestamp_seconds\{job_name="j",kind="retention"\} \d/);
    expect(text).toContain('heimdall_job_run_duration_seconds_count{job_name="j",kind="retention"} 1');
  });

  it('labels an on-demand run job_name="(on-demand)", never an empty label', async () => {
    const h = harness();
    endWith(h.report, recordOf({ jobName: '', kind: 'export', trigger: 'submit' }), 'succeeded');
    const text = await h.metrics.metrics();
    expect(text).toContain('heimdall_job_runs_total{job_name="(on-demand)",kind="export",status="succeeded"} 1');
    expect(text).not.toMatch(/job(_name)?=""/);
  });

  it("a scheduled system check's start and success are no events (history and metrics have them); its failure is one", async () => {
    const h = harness();
    endWith(h.report, recordOf({ jobName: 'system-check', kind: 'system-check' }), 'succeeded');
    expect(h.events).toEqual([]);
    expect(await h.metrics.metrics()).toContain('heimdall_job_runs_total{job_name="system-check",kind="system-check",status="succeeded"} 1');
    endWith(h.report, recordOf({ id: 'r2', jobName: 'system-check', kind: 'system-check' }), 'failed', 'storage is not ready');
    expect(h.events).toHaveLength(1); // job.run.failed alone
    // An on-demand check is the user's own: reported as any other run.
    endWith(h.report, recordOf({ id: 'r3', jobName: '', kind: 'system-check', trigger: 'submit' }), 'succeeded');
    expect(h.events).toHaveLength(3);
  });

  it('log lines carry the run\'s correlation id once, as correlation_id like every other line, in its context or not', () => {
    const h = harness();
    endWith(h.report, recordOf({ correlationId: 'c-out' }), 'succeeded');
    runWithContext({ correlationId: 'c-in' }, () => endWith(h.report, recordOf({ id: 'r2', correlationId: 'c-in' }), 'failed', 'boom'));
    const logged = h.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.map((l) => [l.msg, l.correlation_id])).toEqual([['job run succeeded', 'c-out'], ['job run failed', 'c-in']]);
    for (const line of h.lines) {
      expect(line).not.toContain('correlationId');
      expect(line.match(/"correlation_id"/g)).toHaveLength(1);
    }
  });
});
