import type { JobSpec } from './spec.js';
import { SYSTEM_CHECK_JOB } from './spec.js';

/** What the caps read of a scheduled job. */
export interface CappedJob {
  readonly spec: JobSpec;
  readonly source: 'config' | 'api';
  /** Ids of its runs running now, and of slots taken for runs about to start. */
  readonly running: Set<string>;
}

/** Why another run of a job cannot start now. */
export interface Cap {
  reason: 'max-running' | 'scheduler-full';
  message: string;
}

/** The caps on runs of scheduled jobs: each job's max_running, and jobs.max_scheduled_runs over all of them. */
export interface RunCaps {
  /** Why another run of `job` cannot start now, or undefined when it can. */
  capped(job: CappedJob): Cap | undefined;
  /**
   * Takes a slot for a run of `job` before anything is awaited (a cluster claim, a lease), so ticks,
   * triggers and retries at once cannot pass its caps together: the cap that is full instead.
   * Release it on every way out (safe to call twice); `hold`, called right after, takes it for good.
   */
  take(job: CappedJob): { release: () => void; cap?: undefined } | { cap: Cap };
  /** Counts run `id` of `job` as running, whatever the caps; the returned release (safe to call twice) ends it. */
  hold(job: CappedJob, id: string): () => void;
  /** Runs of scheduled jobs running now, the built-in system check aside. */
  readonly scheduledRuns: number;
}

/** Whether runs of `job` count against jobs.max_scheduled_runs: all but the built-in system check, which user jobs must not starve. */
const bounded = (job: CappedJob): boolean => !(job.source === 'config' && job.spec.name === SYSTEM_CHECK_JOB);

/** Creates the caps; `maxScheduledRuns` is jobs.max_scheduled_runs. Owns the count of scheduled runs. */
export function createRunCaps(options: { maxScheduledRuns: number }): RunCaps {
  let scheduledRuns = 0;
  let slots = 0;
  const hold = (job: CappedJob, id: string): (() => void) => {
    const counted = bounded(job);
    job.running.add(id);
    if (counted) scheduledRuns += 1;
    return () => {
      if (!job.running.delete(id)) return;
      if (counted) scheduledRuns -= 1;
    };
  };
  const capped = (job: CappedJob): Cap | undefined => {
    const max = job.spec.concurrency === 'forbid' ? 1 : job.spec.max_running;
    const n = job.running.size;
    if (n >= max) return { reason: 'max-running', message: `job ${job.spec.name} has ${n} run${n === 1 ? '' : 's'} running (max_running ${max})` };
    if (bounded(job) && scheduledRuns >= options.maxScheduledRuns) return { reason: 'scheduler-full', message: `${scheduledRuns} runs of scheduled jobs are running (jobs.max_scheduled_runs ${options.maxScheduledRuns})` };
    return undefined;
  };
  return {
    capped,
    take(job) {
      const cap = capped(job);
      return cap ? { cap } : { release: hold(job, `slot:${(slots += 1)}`) };
    },
    hold,
    get scheduledRuns() {
      return scheduledRuns;
    },
  };
}
