import { setTimeout as sleep } from 'node:timers/promises';
import { Gauge, type Registry } from 'prom-client';
import { MAX_TIMER_MS } from '../config/units.js';
import type { AgentEventSink } from '../events/events.js';
import { uuidv7 } from '../ids/uuidv7.js';
import { runWithContext } from '../telemetry/context.js';
import type { Logger } from '../telemetry/logger.js';
import { backoffMs } from '../time/backoff.js';
import type { RunHistory, RunRecord, RunTrigger } from './history.js';
import type { TaskKinds } from './kinds/kind.js';
import type { KindName } from './kinds/params.js';
import { createRunReport } from './run-report.js';

/** A run this agent has in hand (pending or running). */
export interface LiveRun {
  readonly record: RunRecord;
  readonly controller: AbortController;
  readonly listeners: Set<(r: RunRecord) => void>;
}

/** What a new run is. */
export interface RunInit {
  jobName: string;
  kind: KindName;
  params: Record<string, unknown>;
  timeoutMs: number;
  attempts: number;
  backoffMs: number;
  trigger: RunTrigger;
  scheduledTime?: number;
  /** A retry keeps the correlation id of the run it retries. */
  correlationId?: string;
  /** The first attempt's number (a retry after a restart goes on counting). */
  attempt?: number;
}

/** Executes runs: attempts with backoff, timeout, cancel, progress, history, events and metrics. */
export interface Runner {
  /** A new pending run, saved to history. */
  create(init: RunInit): LiveRun;
  /** Takes in hand a run recorded earlier (to end it, or to run it), as this instance's: saved so. */
  adopt(record: RunRecord): LiveRun;
  /**
   * Runs it to its end; never throws. `signal` (a cluster lease lost) fails it; a shutdown leaves
   * it recorded as running, so the next start marks it interrupted and retries it.
   */
  execute(live: LiveRun, options?: { signal?: AbortSignal | undefined; fence?: number | undefined }): Promise<void>;
  /** Ends a run that never started (cancelled while queued, or interrupted), saved and reported. */
  finish(live: LiveRun, status: 'cancelled' | 'failed', error: string): void;
  live(id: string): LiveRun | undefined;
  /** Saves every live run again, so other agents can tell its agent is still there. */
  heartbeat(): void;
  /** Runs running now. */
  readonly running: number;
  /** Aborts every run as the agent stops, and waits for them to let go (at most `graceMs`). */
  stopAll(graceMs: number): Promise<void>;
}

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

/** Rejects as soon as `signal` aborts, whether or not the work notices. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A pending run's record, named by a new time-ordered id. */
function newRecord(init: RunInit, instance: string): RunRecord {
  const now = Date.now();
  const id = uuidv7(now);
  return {
    id,
    jobName: init.jobName,
    kind: init.kind,
    params: init.params,
    timeoutMs: init.timeoutMs,
    attempts: init.attempts,
    backoffMs: init.backoffMs,
    trigger: init.trigger,
    status: 'pending',
    attempt: init.attempt ?? 1,
    progress: 0,
    message: '',
    error: '',
    result: {},
    correlationId: init.correlationId ?? id,
    instance,
    fence: 0,
    scheduledTime: init.scheduledTime ?? 0,
    createdAt: now,
    startedAt: 0,
    endedAt: 0,
  };
}

/**
 * Creates the runner. Owns the live runs; reporting is createRunReport's. Over 80 lines: the attempt
 * loop (timeout, backoff, cancel, shutdown) reads best whole, next to the live runs it updates.
 */
export function createRunner(options: { kinds: TaskKinds; history: RunHistory; pipeline: AgentEventSink; instance: string; logger: Logger; metrics: Registry }): Runner {
  const { history, instance } = options;
  const logger = options.logger.child({ component: 'jobs' });
  const live = new Map<string, LiveRun>();
  const executing = new Set<Promise<void>>();
  let running = 0;
  const report = createRunReport({ history, pipeline: options.pipeline, logger, metrics: options.metrics });
  const update = (l: LiveRun): void => report.update(l);
  new Gauge({ name: 'heimdall_jobs_running', help: 'Job runs running now.', registers: [options.metrics], collect() { this.set(running); } });
  const ended = (l: LiveRun): void => {
    live.delete(l.record.id);
    report.ended(l);
  };

  const run = async (l: LiveRun, signal: AbortSignal | undefined, fence: number): Promise<void> => {
    const r = l.record;
    r.status = 'running';
    r.startedAt = Date.now();
    r.fence = fence;
    if (r.attempt < 1) r.attempt = 1;
    update(l);
    report.started(r);
    const task = options.kinds[r.kind as KindName];
    const stop = signal ? AbortSignal.any([l.controller.signal, signal]) : l.controller.signal;
    for (;;) {
      const timeout = AbortSignal.timeout(r.timeoutMs);
      const attemptSignal = AbortSignal.any([stop, timeout]);
      const ctx = {
        runId: r.id,
        jobName: r.jobName,
        correlationId: r.correlationId,
        signal: attemptSignal,
        logger: logger.child({ run: r.id, correlationId: r.correlationId }),
        progress: (percent: number, message: string) => {
          if (attemptSignal.aborted || !live.has(r.id)) return;
          r.progress = Math.max(0, Math.min(100, Math.round(percent)));
          r.message = message;
          update(l);
        },
      };
      try {
        const out = await untilAborted(task(r.params, ctx), attemptSignal);
        r.status = 'succeeded';
        r.progress = 100;
        r.message = out.message;
        r.result = out.result;
        r.error = '';
        break;
      } catch (err) {
        const reason = l.controller.signal.reason as unknown;
        if (reason instanceof RunAborted) {
          if (reason.shutdown) return; // stays running in history: interrupted, retried at the next start
          r.status = 'cancelled';
          r.error = reason.message;
          break;
        }
        r.error = timeout.aborted ? `timed out after ${r.timeoutMs} ms` : signal?.aborted ? (signal.reason as Error).message : (err as Error).message || String(err);
        if (r.attempt >= r.attempts || signal?.aborted) {
          r.status = 'failed';
          break;
        }
        const wait = backoffMs(r.attempt, r.backoffMs, MAX_TIMER_MS);
        r.message = `attempt ${r.attempt} failed: ${r.error}; retrying in ${wait} ms`;
        update(l);
        try {
          await sleep(wait, undefined, { signal: stop });
        } catch {
          const why = l.controller.signal.reason as unknown;
          if (why instanceof RunAborted && why.shutdown) return;
          r.status = why instanceof RunAborted ? 'cancelled' : 'failed';
          r.error = why instanceof RunAborted ? why.message : (signal?.reason as Error | undefined)?.message ?? r.error;
          break;
        }
        r.attempt += 1;
        r.message = `attempt ${r.attempt}`;
        update(l);
      }
    }
    ended(l);
  };

  return {
    create(init) {
      const record = newRecord(init, instance);
      const l: LiveRun = { record, controller: new AbortController(), listeners: new Set() };
      live.set(record.id, l);
      history.save(record);
      return l;
    },
    adopt(record) {
      const l: LiveRun = { record: { ...record, instance, version: undefined }, controller: new AbortController(), listeners: new Set() };
      live.set(record.id, l);
      history.save(l.record);
      return l;
    },
    execute(l, opts = {}) {
      running += 1;
      // The run's logs and the calls it makes carry its correlation id.
      const p = runWithContext({ correlationId: l.record.correlationId }, () => run(l, opts.signal, opts.fence ?? 0))
        .catch((err: unknown) => logger.error({ err, run: l.record.id }, 'job runner failed'))
        .finally(() => {
          running -= 1;
          live.delete(l.record.id);
          executing.delete(p);
        });
      executing.add(p);
      return p;
    },
    finish(l, status, error) {
      l.record.status = status;
      l.record.error = error;
      ended(l);
    },
    live: (id) => live.get(id),
    heartbeat() {
      for (const l of live.values()) history.save(l.record);
    },
    get running() {
      return running;
    },
    async stopAll(graceMs) {
      for (const l of live.values()) l.controller.abort(new RunAborted('the agent is shutting down', true));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...executing]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    },
  };
}
