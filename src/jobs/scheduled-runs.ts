import type { Logger } from '../telemetry/logger.js';
import { JobError } from './errors.js';
import type { RunRecord, RunTrigger } from './history.js';
import type { Entry } from './job-table.js';
import type { KindName } from './kinds/params.js';
import type { Lease, Leases } from './lease.js';
import type { RunCaps } from './run-caps.js';
import type { LiveRun, Runner } from './runner.js';

/** A cluster lease for a run, or why the run cannot take one here. */
export interface LeaseGrant {
  lease?: Lease;
  refused?: string;
}

/** Starts runs of scheduled jobs under their caps and cluster leases. */
export interface ScheduledRuns {
  /** Starts a run of `e` now, whatever the caps (take a slot first); the run goes on in the background, holding `lease`. */
  start(e: Entry, trigger: RunTrigger, scheduledTime: number, lease: Lease | undefined, retry?: RunRecord): LiveRun;
  /** The cluster lease for a run of `e`, or why it cannot run here; throws when Redis cannot answer. */
  takeLease(e: Entry): Promise<LeaseGrant>;
  /** A manual run: FAILED_PRECONDITION while it runs (forbid) or runs elsewhere, RESOURCE_EXHAUSTED past a cap, UNAVAILABLE when Redis cannot answer. */
  trigger(e: Entry): Promise<LiveRun>;
  /** Retries an interrupted run of `e` (attempt after `r`'s) if its caps and lease allow; skipped ones are logged and counted. Never throws. */
  retry(e: Entry, r: RunRecord): Promise<void>;
}

/** Counts a tick of a scheduled job not run here, by reason (heimdall_job_ticks_skipped_total). */
export type SkippedTicks = (jobName: string, reason: string) => void;

/** The run's timeout and retry policy as the runner takes them. */
export const runPolicy = (spec: { timeout: number; retry: { attempts: number; backoff: number } }) => ({ timeoutMs: spec.timeout, attempts: spec.retry.attempts, backoffMs: spec.retry.backoff });

/** Creates it; `skipped` is heimdall_job_ticks_skipped_total, `onChange` is called as runs start and end. */
export function createScheduledRuns(options: { runner: Runner; caps: RunCaps; leases: Leases | undefined; skipped: SkippedTicks; onChange: () => void; logger: Logger }): ScheduledRuns {
  const { runner, caps, leases, logger } = options;
  const start: ScheduledRuns['start'] = (e, trigger, scheduledTime, lease, retry) => {
    const l = runner.create({ jobName: e.spec.name, kind: e.spec.kind as KindName, params: e.spec.params, ...runPolicy(e.spec), trigger, scheduledTime, correlationId: retry?.correlationId, attempt: retry && retry.attempt + 1 });
    const release = caps.hold(e, l.record.id);
    e.lastRun = l.record;
    options.onChange();
    void runner.execute(l, { signal: lease?.lost, fence: lease?.fence }).finally(() => {
      release();
      options.onChange();
      return lease?.release();
    });
    return l;
  };
  const takeLease = async (e: Entry): Promise<LeaseGrant> => {
    if (e.spec.scope !== 'cluster' || !leases || e.spec.concurrency === 'allow') return {};
    const lease = await leases.acquire(e.spec.name);
    return lease ? { lease } : { refused: 'lease-held' };
  };
  return {
    start,
    takeLease,
    async trigger(e) {
      const name = e.spec.name;
      if (e.spec.concurrency === 'forbid' && e.running.size > 0) throw new JobError('failed_precondition', `job ${name} is running (concurrency forbid); wait for its run to end`);
      const slot = caps.take(e);
      if (slot.cap) throw new JobError('resource_exhausted', `${slot.cap.message}; retry later`);
      let taken: LeaseGrant;
      try {
        taken = await takeLease(e);
      } catch (err) {
        throw new JobError('unavailable', `redis cannot grant job ${name} its lease: ${(err as Error).message}`);
      } finally {
        slot.release();
      }
      if (taken.refused) throw new JobError('failed_precondition', `job ${name} is running on another replica`);
      return start(e, 'manual', 0, taken.lease);
    },
    async retry(e, r) {
      const slot = caps.take(e);
      if (slot.cap) {
        options.skipped(r.jobName, slot.cap.reason);
        logger.warn({ run: r.id, job: r.jobName, reason: slot.cap.reason }, `interrupted run not retried: ${slot.cap.message}; the job's next tick runs it`);
        return;
      }
      logger.info({ run: r.id, job: r.jobName, kind: r.kind, attempt: r.attempt + 1 }, 'retrying an interrupted run');
      const taken = await takeLease(e).catch((): LeaseGrant => ({ refused: 'redis-unavailable' }));
      slot.release();
      if (!taken.refused) start(e, 'retry', r.scheduledTime, taken.lease, r);
    },
  };
}
