/**
 * The scheduler's units wired as createJobs wires them (table, caps, scheduled runs, ticks) over a real
 * runner, with a fake clock: ticks past the caps are skipped and counted, missed ticks run once, and the
 * table merges the config file and the store.
 */
import { Counter } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createJobTable, viewOf, type JobTable } from '../../../src/jobs/job-table.js';
import { createRunCaps } from '../../../src/jobs/run-caps.js';
import { createScheduledRuns } from '../../../src/jobs/scheduled-runs.js';
import { jobSpecSchema, SYSTEM_CHECK_JOB, type JobSpec } from '../../../src/jobs/spec.js';
import type { StoredState } from '../../../src/jobs/store.js';
import { createTicks } from '../../../src/jobs/ticks.js';
import { silentLogger } from '../../support/temp.js';
import { runsHarness } from './runs-harness.js';

const spec = (name: string, over: Record<string, unknown> = {}): JobSpec => jobSpecSchema.parse({ name, schedule: '*/10 * * * * *', kind: 'system-check', ...over });

function scheduler(maxScheduledRuns = 10) {
  const h = runsHarness();
  const counter = new Counter({ name: 'heimdall_job_ticks_skipped_total', help: 'skipped', labelNames: ['job_name', 'reason'] as const, registers: [h.metrics] });
  const skipped = (jobName: string, reason: string): void => counter.inc({ job_name: jobName, reason });
  const caps = createRunCaps({ maxScheduledRuns });
  const logger = silentLogger();
  const runs = createScheduledRuns({ runner: h.runner, caps, leases: undefined, skipped, onChange: () => undefined, logger });
  const table: JobTable = createJobTable({ onTick: (e, t) => ticks.tick(e, 'schedule', t), onOverlap: (e) => skipped(e.spec.name, 'overlap'), onChange: () => undefined, logger });
  const ticks = createTicks({ runs, caps, runner: h.runner, leases: undefined, skipped, current: (e) => table.get(e.spec.name) === e, logger });
  const skips = async (): Promise<Record<string, number>> =>
    Object.fromEntries(((await h.metrics.getSingleMetric('heimdall_job_ticks_skipped_total')?.get())?.values ?? []).map((v) => [`${v.labels.job_name}/${v.labels.reason}`, v.value]));
  return { ...h, caps, table, ticks, skips };
}

describe('scheduler with a fake clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(new Date('2026-03-28T23:59:55.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('runs of a job whose runs hang stop at max_running; later ticks are skipped and counted until one ends', async () => {
    const s = scheduler();
    const e = s.table.schedule(spec('pile', { concurrency: 'allow', max_running: 2 }), 'api', { createdAt: 0, updatedAt: 0 });
    await vi.advanceTimersByTimeAsync(46_000); // ticks at :00, :10, :20, :30, :40
    expect(s.started).toHaveLength(2);
    expect(e.skipping).toBe('max-running');
    expect(await s.skips()).toEqual({ 'pile/max-running': 3 });
    s.started[0]?.succeed();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.started).toHaveLength(2);
    expect(e.skipping).toBeUndefined();
    s.table.stop();
  });

  it('jobs together stop at jobs.max_scheduled_runs; the built-in system check still runs', async () => {
    const s = scheduler(1);
    s.table.schedule(spec('a'), 'api', { createdAt: 0, updatedAt: 0 });
    s.table.schedule(spec('b'), 'api', { createdAt: 0, updatedAt: 0 });
    s.table.reconcile([spec(SYSTEM_CHECK_JOB)]);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(s.started).toHaveLength(2); // a, and the system check
    expect(await s.skips()).toEqual({ 'b/scheduler-full': 1 });
    expect(s.caps.scheduledRuns).toBe(1);
    s.table.stop();
  });

  it('a forbid job\'s tick during its run is an overlap; a replaced job\'s ticks are dropped', async () => {
    const s = scheduler();
    const first = s.table.schedule(spec('f'), 'api', { createdAt: 0, updatedAt: 0 });
    await vi.advanceTimersByTimeAsync(26_000); // ticks at :00, :10, :20
    expect(s.started).toHaveLength(1);
    expect(await s.skips()).toEqual({ 'f/overlap': 2 });
    s.table.schedule(spec('f', { schedule: '*/5 * * * * *' }), 'api', { createdAt: 0, updatedAt: 1 });
    await s.ticks.tick(first, 'schedule', Date.now()); // the old entry's tick: not run
    expect(s.started).toHaveLength(1);
    s.table.stop();
  });

  it('runs a run-once job\'s newest missed tick once at start; a skip job and an inactive one wait', async () => {
    const s = scheduler();
    const now = Date.now();
    for (const [name, over] of [['once', { misfire: 'run-once' }], ['skip', {}], ['paused', { misfire: 'run-once', active: false }]] as const) s.table.schedule(spec(name, over), 'api', { createdAt: 0, updatedAt: 0 });
    const last = new Map([['once', now - 60_000], ['skip', now - 60_000], ['paused', now - 60_000]]);
    s.ticks.runMissed(s.table.entries(), last, now);
    await vi.advanceTimersByTimeAsync(0);
    expect(s.started).toHaveLength(1);
    const run = s.runner.live(s.started[0]?.runId ?? '')?.record;
    expect(run).toMatchObject({ jobName: 'once', trigger: 'misfire', scheduledTime: new Date('2026-03-28T23:59:50.000Z').getTime() });
    s.table.stop();
  });
});

describe('job table: config file and store', () => {
  const logger = silentLogger();
  const table = () => createJobTable({ onTick: async () => undefined, onOverlap: () => undefined, onChange: () => undefined, logger });
  const daily = (name: string, over: Record<string, unknown> = {}) => spec(name, { schedule: '0 3 * * *', ...over });
  const state = (jobs: JobSpec[], pauses: StoredState['pauses'] = new Map()): StoredState => ({ jobs: jobs.map((j) => ({ spec: j, createdAt: 1, updatedAt: 1 })), pauses });

  it('reconcile adds, replaces and removes config jobs, keeps unchanged ones, and never replaces an API job', () => {
    const t = table();
    t.applyStored(state([daily('api-job')]), true);
    t.reconcile([daily('a'), daily('b'), daily('api-job', { schedule: '0 4 * * *' })]);
    const a = t.get('a');
    expect(t.get('api-job')?.source).toBe('api');
    t.reconcile([daily('a'), daily('c')]);
    expect(t.get('a')).toBe(a);
    expect(t.entries().map((e) => e.spec.name).sort()).toEqual(['a', 'api-job', 'c']);
    t.reconcile([daily('a', { schedule: '0 5 * * *' })]);
    expect(t.get('a')).not.toBe(a);
    expect(t.get('a')?.createdAt).toBe(a?.createdAt);
    t.stop();
  });

  it('applies the store: API jobs created, changed and deleted elsewhere; a config job wins its name', () => {
    const t = table();
    t.reconcile([daily('cfg')]);
    t.applyStored(state([daily('x'), daily('cfg', { schedule: '0 9 * * *' })]), true);
    expect(t.get('cfg')?.source).toBe('config');
    expect(t.get('cfg')?.spec.schedule).toBe('0 3 * * *');
    const x = t.get('x');
    t.applyStored(state([daily('x')]), false);
    expect(t.get('x')).toBe(x); // same version: untouched
    t.applyStored({ jobs: [{ spec: daily('x', { schedule: '0 6 * * *' }), createdAt: 1, updatedAt: 2 }], pauses: new Map() }, false);
    expect(t.get('x')?.spec.schedule).toBe('0 6 * * *');
    t.applyStored(state([]), false);
    expect(t.get('x')).toBeUndefined();
    expect(t.get('cfg')).toBeDefined();
    t.stop();
  });

  it('a pause of a config job holds while the file\'s active flag is what it was when paused', () => {
    const t = table();
    t.reconcile([daily('cfg')]);
    t.applyStored(state([], new Map([['cfg', { paused: true, configActive: true, updatedAt: 1 }]])), false);
    expect(viewOf(t.get('cfg') as NonNullable<ReturnType<JobTable['get']>>)).toMatchObject({ paused: true, nextRun: undefined });
    t.reconcile([daily('cfg', { timeout: '1m' })]); // edited, still active in the file: the pause holds
    expect(t.get('cfg')?.spec.active).toBe(false);
    t.reconcile([daily('cfg', { active: false })]);
    t.reconcile([daily('cfg', { active: true, timeout: '2m' })]);
    expect(t.get('cfg')?.spec.active).toBe(false);
    t.setPause('cfg', { paused: false, configActive: true, updatedAt: 2 });
    t.reconcile([daily('cfg', { timeout: '3m' })]);
    expect(t.get('cfg')?.spec.active).toBe(true);
    t.stop();
  });
});
