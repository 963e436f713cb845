/** The caps on runs of scheduled jobs alone: max_running per job, jobs.max_scheduled_runs over all, slots taken before a claim. */
import { describe, expect, it } from 'vitest';
import { createRunCaps, type CappedJob } from '../../../src/jobs/run-caps.js';
import { jobSpecSchema, SYSTEM_CHECK_JOB } from '../../../src/jobs/spec.js';

const job = (over: Record<string, unknown> = {}, source: 'config' | 'api' = 'api'): CappedJob => ({
  spec: jobSpecSchema.parse({ name: 'j', schedule: '* * * * *', kind: 'system-check', concurrency: 'allow', max_running: 2, ...over }),
  source,
  running: new Set(),
});

describe('run caps', () => {
  it('a job runs at most max_running at once (one with concurrency forbid), slots and runs alike', () => {
    const caps = createRunCaps({ maxScheduledRuns: 10 });
    const j = job();
    const slot = caps.take(j);
    if (slot.cap) throw new Error(slot.cap.message);
    caps.hold(j, 'run-1');
    expect(caps.take(j).cap).toEqual({ reason: 'max-running', message: 'job j has 2 runs running (max_running 2)' });
    slot.release();
    slot.release(); // a second release changes nothing
    expect(j.running).toEqual(new Set(['run-1']));
    expect(caps.scheduledRuns).toBe(1);
    const forbid = job({ concurrency: 'forbid' });
    caps.hold(forbid, 'run-2');
    expect(caps.capped(forbid)).toEqual({ reason: 'max-running', message: 'job j has 1 run running (max_running 1)' });
  });

  it('all jobs together run at most jobs.max_scheduled_runs; the built-in system check neither counts nor is held back', () => {
    const caps = createRunCaps({ maxScheduledRuns: 2 });
    const [a, b, c] = [job({ name: 'a' }), job({ name: 'b' }), job({ name: 'c' })];
    const endA = caps.hold(a, 'a1');
    const slotB = caps.take(b);
    if (slotB.cap) throw new Error(slotB.cap.message);
    expect(caps.scheduledRuns).toBe(2);
    expect(caps.take(c).cap).toEqual({ reason: 'scheduler-full', message: '2 runs of scheduled jobs are running (jobs.max_scheduled_runs 2)' });
    const check = job({ name: SYSTEM_CHECK_JOB }, 'config');
    expect(caps.take(check).cap).toBeUndefined();
    expect(caps.scheduledRuns).toBe(2);
    // An API job that happens to bear the name counts.
    expect(caps.take(job({ name: SYSTEM_CHECK_JOB })).cap?.reason).toBe('scheduler-full');
    endA();
    endA();
    slotB.release();
    expect(caps.scheduledRuns).toBe(0);
    expect(caps.take(c).cap).toBeUndefined();
  });
});
