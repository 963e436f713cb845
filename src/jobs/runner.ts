import { Gauge, type Registry } from 'prom-client';
import type { AgentEventSink } from '../events/events.js';
import { uuidv7 } from '../ids/uuidv7.js';
import { runWithContext } from '../telemetry/context.js';
import type { Logger } from '../telemetry/logger.js';
import { RunAborted, runAttempts } from './attempts.js';
import type { RunHistory, RunRecord, RunTrigger } from './history.js';
import type { JobSeries } from './job-series.js';
import type { TaskKinds } from './kinds/kind.js';
import type { KindName } from './kinds/params.js';
import { createRunReport } from './run-report.js';

export { RunAborted };

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
 * Creates the runner. Owns the live runs and the count of running ones; the attempt loop is
 * runAttempts', reporting is createRunReport's.
 */
export function createRunner(options: { kinds: TaskKinds; history: RunHistory; pipeline: AgentEventSink; instance: string; logger: Logger; metrics: Registry; series?: JobSeries | undefined }): Runner {
  const { history, instance } = options;
  const logger = options.logger.child({ component: 'jobs' });
  const live = new Map<string, LiveRun>();
  const executing = new Set<Promise<void>>();
  let running = 0;
  const report = createRunReport({ history, pipeline: options.pipeline, logger, metrics: options.metrics, series: options.series });
  new Gauge({ name: 'heimdall_jobs_running', help: 'Job runs running now.', registers: [options.metrics], collect() { this.set(running); } });
  const ended = (l: LiveRun): void => {
    live.delete(l.record.id);
    report.ended(l);
  };

  /** Marks the run started, runs its attempts, and reports its end (an interrupted run stays running in history: the next start retries it). */
  const run = async (l: LiveRun, lease: AbortSignal | undefined, fence: number): Promise<void> => {
    const r = l.record;
    r.status = 'running';
    r.startedAt = Date.now();
    r.fence = fence;
    if (r.attempt < 1) r.attempt = 1;
    report.update(l);
    report.started(r);
    const hooks = { update: () => report.update(l), isLive: () => live.has(r.id), logger };
    if ((await runAttempts(l, options.kinds[r.kind as KindName], lease, hooks)) === 'ended') ended(l);
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
