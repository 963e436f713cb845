/** Recovery of interrupted runs alone, over a real runner: which runs are taken back, failed, retried or left to others. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunRecord } from '../../../src/jobs/history.js';
import type { Entry } from '../../../src/jobs/job-table.js';
import { createRecovery, STALE_MS, type RecoveryOptions } from '../../../src/jobs/recovery.js';
import type { LiveRun } from '../../../src/jobs/runner.js';
import { jobSpecSchema } from '../../../src/jobs/spec.js';
import { silentLogger } from '../../support/temp.js';
import { runsHarness } from './runs-harness.js';

const record = (over: Partial<RunRecord>): RunRecord => ({
  id: `run-${Math.random().toString(36).slice(2)}`, jobName: '', kind: 'system-check', params: {}, timeoutMs: 10_000, attempts: 2, backoffMs: 0, trigger: 'submit', status: 'running', attempt: 1,
  progress: 0, message: '', error: '', result: {}, correlationId: 'corr', instance: 'me', fence: 0, scheduledTime: 0, createdAt: 1, startedAt: 1, endedAt: 0, version: 7, ...over,
});

const entry = (name: string, over: Record<string, unknown> = {}): Entry => ({ spec: jobSpecSchema.parse({ name, schedule: '0 3 * * *', kind: 'system-check', ...over }), source: 'api', running: new Set() }) as unknown as Entry;

function setup(stored: RunRecord[], over: Partial<RecoveryOptions> = {}) {
  const h = runsHarness('me');
  const queued: LiveRun[] = [];
  const retried: Array<{ job: string; run: string }> = [];
  const asked: Array<{ staleBefore: number; since: number }> = [];
  const entries = new Map([['active', entry('active')], ['paused', entry('paused', { active: false })], ['cluster', entry('cluster', { scope: 'cluster' })]]);
  const recovery = createRecovery({
    history: {
      unfinished: async (_instance, staleBefore, since) => (asked.push({ staleBefore, since }), stored),
      get: async (id) => stored.find((r) => r.id === id),
      flush: async () => undefined,
      failedAt: 0,
    },
    runner: h.runner,
    instance: 'me',
    sharedStorage: false,
    leases: undefined,
    entry: (name) => entries.get(name),
    retry: async (e, r) => void retried.push({ job: e.spec.name, run: r.id }),
    enqueue: (l) => void queued.push(l),
    logger: silentLogger(),
    ...over,
  });
  const ended = (id: string) => h.history.get(id);
  return { recovery, queued, retried, asked, ended };
}

describe('recovery of interrupted runs', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-29T00:00:00.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('own runs: a queued job goes back as it was; a started one fails as interrupted and is retried while attempts remain', async () => {
    const pending = record({ status: 'pending', attempt: 1 });
    const started = record({ attempt: 1 });
    const last = record({ attempt: 2 });
    const s = setup([pending, started, last]);
    await s.recovery.sweep(0);
    expect(s.queued.map((l) => l.record)).toEqual([
      expect.objectContaining({ id: pending.id, status: 'pending', attempt: 1 }),
      expect.objectContaining({ trigger: 'retry', attempt: 2, correlationId: 'corr', status: 'pending' }),
    ]);
    expect(await s.ended(started.id)).toMatchObject({ status: 'failed', error: 'interrupted: the agent stopped while it ran' });
    expect(await s.ended(last.id)).toMatchObject({ status: 'failed' });
    expect(s.asked).toEqual([{ staleBefore: Date.now() - STALE_MS, since: 0 }]);
  });

  it('scheduled runs are retried only while their job is scheduled and active; another pod\'s pod-scoped run is that pod\'s', async () => {
    const runs = [record({ jobName: 'active' }), record({ jobName: 'paused' }), record({ jobName: 'gone' }), record({ jobName: 'active', instance: 'other' }), record({ jobName: 'cluster', instance: 'other' })];
    const s = setup(runs);
    await s.recovery.sweep(0);
    expect(s.retried).toEqual([{ job: 'active', run: runs[0]?.id }, { job: 'cluster', run: runs[4]?.id }]);
    for (const r of runs) expect((await s.ended(r.id))?.status).toBe('failed');
  });

  it('on shared storage: without redis another agent\'s run is only failed; with redis, only the claimer touches it', async () => {
    const foreign = record({ instance: 'other' });
    const alone = setup([foreign], { sharedStorage: true });
    await alone.recovery.sweep(0);
    expect(alone.queued).toHaveLength(0);
    expect(await alone.ended(foreign.id)).toMatchObject({ status: 'failed', error: `interrupted: its agent other went away (no heartbeat for ${STALE_MS / 1000} s)` });
    // Storage has not taken writes for STALE_MS yet: only this agent's runs are asked for.
    expect(alone.asked[0]?.staleBefore).toBe(0);

    const claims: string[] = [];
    const lost = setup([record({ instance: 'other', id: 'lost' })], { sharedStorage: true, leases: { claimRun: async (id, version) => (claims.push(`${id}@${version}`), false) } });
    await lost.recovery.sweep(0);
    expect(claims).toEqual(['lost@7']);
    expect(await lost.ended('lost')).toBeUndefined();
    const won = setup([record({ instance: 'other', id: 'won', status: 'pending' })], { sharedStorage: true, leases: { claimRun: async () => true } });
    await won.recovery.sweep(0);
    expect(won.queued.map((l) => [l.record.id, l.record.instance])).toEqual([['won', 'me']]);
  });

  it('counts other agents\' runs as stale only once storage has taken writes for STALE_MS; one sweep at a time', async () => {
    const s = setup([], { sharedStorage: true });
    vi.setSystemTime(Date.now() + STALE_MS);
    s.recovery.storageDown();
    await s.recovery.sweep(5);
    vi.setSystemTime(Date.now() + STALE_MS);
    const one = s.recovery.sweep(6);
    expect(s.recovery.sweep(7)).toBe(one);
    await one;
    await s.recovery.settled();
    expect(s.asked).toEqual([{ staleBefore: 0, since: 5 }, { staleBefore: Date.now() - STALE_MS, since: 6 }]);
  });
});
