import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_TIMER_MS } from '../config/units.js';
import type { Logger } from '../telemetry/logger.js';
import { backoffMs } from '../time/backoff.js';
import type { RunRecord } from './history.js';
import type { TaskContext, TaskRunner } from './kinds/kind.js';

/** Why a run was aborted: a user's cancel, or the agent stopping. */
export class RunAborted extends Error {
  override name = 'RunAborted';
  constructor(
    message: string,
    readonly shutdown = false,
  ) {
    super(message);
  }
}

/** What the attempt loop needs of a run: its record (updated in place) and its cancel. */
export interface AttemptedRun {
  readonly record: RunRecord;
  /** Aborted with a RunAborted: a user's cancel, or (`shutdown`) the agent stopping. */
  readonly controller: AbortController;
}

/** What the attempt loop needs of the runner around it. */
export interface AttemptHooks {
  /** Saves the record's new state and tells its watchers. */
  update(): void;
  /** False once the runner has let the run go: a late progress report is dropped. */
  isLive(): boolean;
  /** The runner's logger; each attempt's task gets a child naming the run. */
  logger: Logger;
}

/** How the attempts ended: `ended` with the record's final status set, or `interrupted` by a shutdown (the record stays `running`). */
export type AttemptsOutcome = 'ended' | 'interrupted';

/** How long an aborted attempt's task gets to finish its own cleanup (an export removing its part file) before the run ends without it. */
export const ABORT_GRACE_MS = 1_000;

/**
 * Rejects with the abort's reason once `signal` aborts and the work has settled (its cleanup done),
 * or ABORT_GRACE_MS after the abort when the work does not notice.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  const settled = work.then(
    () => undefined,
    () => undefined,
  );
  const afterAbort = (): Promise<never> => Promise.race([settled, sleep(ABORT_GRACE_MS, undefined, { ref: false })]).then(() => Promise.reject(signal.reason as Error));
  if (signal.aborted) return afterAbort();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => void afterAbort().catch(reject);
    signal.addEventListener('abort', onAbort, { once: true });
    // Once aborted, the abort is the outcome, even when the work ends well within the grace.
    work
      .then(
        (value) => signal.aborted || resolve(value),
        (err: unknown) => signal.aborted || reject(err as Error),
      )
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The context one attempt's task gets: progress (clamped to 0-100) counts only while the attempt is on and the run live. */
function taskContext(run: AttemptedRun, signal: AbortSignal, hooks: AttemptHooks): TaskContext {
  const r = run.record;
  return {
    runId: r.id,
    jobName: r.jobName,
    correlationId: r.correlationId,
    signal,
    logger: hooks.logger.child({ run: r.id }),
    progress: (percent, message) => {
      if (signal.aborted || !hooks.isLive()) return;
      r.progress = Math.max(0, Math.min(100, Math.round(percent)));
      r.message = message;
      hooks.update();
    },
  };
}

/** Sets a cancel's status, or returns `interrupted` for a shutdown; undefined when the run was not aborted. */
function aborted(run: AttemptedRun): AttemptsOutcome | undefined {
  const reason = run.controller.signal.reason as unknown;
  if (!(reason instanceof RunAborted)) return undefined;
  if (reason.shutdown) return 'interrupted';
  run.record.status = 'cancelled';
  run.record.error = reason.message;
  return 'ended';
}

/**
 * Runs a started run's attempts: each under the run's timeout; a failed one is retried after an
 * exponential backoff (from `backoffMs`, at most the longest timer) until `attempts` are spent.
 * A cancel ends it `cancelled`; `lease` aborting (a cluster lease lost) fails it without retry;
 * a shutdown interrupts it. Never throws: a task's error becomes the record's.
 */
export async function runAttempts(run: AttemptedRun, task: TaskRunner, lease: AbortSignal | undefined, hooks: AttemptHooks): Promise<AttemptsOutcome> {
  const r = run.record;
  const stop = lease ? AbortSignal.any([run.controller.signal, lease]) : run.controller.signal;
  for (;;) {
    const timeout = AbortSignal.timeout(r.timeoutMs);
    const attemptSignal = AbortSignal.any([stop, timeout]);
    try {
      const out = await untilAborted(task(r.params, taskContext(run, attemptSignal, hooks)), attemptSignal);
      r.status = 'succeeded';
      r.progress = 100;
      r.message = out.message;
      r.result = out.result;
      r.error = '';
      return 'ended';
    } catch (err) {
      const abort = aborted(run);
      if (abort) return abort;
      r.error = timeout.aborted ? `timed out after ${r.timeoutMs} ms` : lease?.aborted ? (lease.reason as Error).message : (err as Error).message || String(err);
      if (r.attempt >= r.attempts || lease?.aborted) {
        r.status = 'failed';
        return 'ended';
      }
      const wait = backoffMs(r.attempt, r.backoffMs, MAX_TIMER_MS);
      r.message = `attempt ${r.attempt} failed: ${r.error}; retrying in ${wait} ms`;
      hooks.update();
      try {
        await sleep(wait, undefined, { signal: stop });
      } catch {
        const why = aborted(run);
        if (why) return why;
        r.status = 'failed';
        r.error = (lease?.reason as Error | undefined)?.message ?? r.error;
        return 'ended';
      }
      r.attempt += 1;
      r.message = `attempt ${r.attempt}`;
      hooks.update();
    }
  }
}
