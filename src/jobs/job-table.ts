import type { Cron } from 'croner';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';
import type { RunRecord } from './history.js';
import type { CappedJob } from './run-caps.js';
import { scheduleJob } from './schedule.js';
import type { JobSpec } from './spec.js';
import type { StoredPause, StoredState } from './store.js';

/** A scheduled job as the API shows it. */
export interface ScheduledView {
  spec: JobSpec;
  source: 'config' | 'api';
  /** Paused through the API (or created paused). */
  paused: boolean;
  nextRun: Date | undefined;
  lastRun: RunRecord | undefined;
  createdAt: number;
  updatedAt: number;
}

/** A scheduled job and its croner schedule. */
export interface Entry extends CappedJob {
  spec: JobSpec;
  /** A config job as the file has it (`spec` may differ by a pause through the API). */
  readonly declared?: JobSpec | undefined;
  cron: Cron;
  /** Why its ticks are being skipped for want of a slot, while they are (logged once per streak). */
  skipping?: string | undefined;
  lastRun: RunRecord | undefined;
  readonly createdAt: number;
  updatedAt: number;
}

/** The scheduled jobs (config and API) and the pauses of config jobs through the API. */
export interface JobTable {
  get(name: string): Entry | undefined;
  /** Every scheduled job, in the order they were scheduled. */
  entries(): Entry[];
  /** Schedules `spec` (replacing a job of that name, whose runs it keeps counting); `declared` marks a config job. */
  schedule(spec: JobSpec, source: 'config' | 'api', times: { createdAt: number; updatedAt: number }, declared?: JobSpec): Entry;
  unschedule(name: string): void;
  /** Pauses or resumes a job's schedule (logged when it changes). */
  setActive(e: Entry, active: boolean): void;
  /** Records a pause of a config job through the API (already stored). */
  setPause(name: string, pause: StoredPause): void;
  /** Applies the config file's jobs: adds, replaces and removes config jobs; an API job keeps its name. */
  reconcile(configJobs: readonly JobSpec[]): void;
  /**
   * Applies what the store holds: API jobs created, changed or deleted (on this or another replica),
   * and pauses of config jobs. `first` is the load at start: invalid or shadowed jobs are logged then.
   */
  applyStored(state: StoredState, first: boolean): void;
  /** Stops every schedule (runs go on). */
  stop(): void;
}

/** What the table calls. */
export interface JobTableOptions {
  /** A tick of `e` is due (see TickHandlers.onTick). */
  onTick(e: Entry, tickMs: number): Promise<void>;
  /** A tick of `e` came while its run went on (concurrency forbid). */
  onOverlap(e: Entry): void;
  /** The set of jobs, or one's state, changed. */
  onChange(): void;
  logger: Logger;
}

/** The job as the API shows it. */
export function viewOf(e: Entry): ScheduledView {
  return { spec: e.spec, source: e.source, paused: !e.spec.active, nextRun: e.spec.active ? (e.cron.nextRun() ?? undefined) : undefined, lastRun: e.lastRun && { ...e.lastRun }, createdAt: e.createdAt, updatedAt: e.updatedAt };
}

/** Registers heimdall_job_next_run_timestamp_seconds over the table's active jobs. */
export function registerNextRunGauge(table: Pick<JobTable, 'entries'>, metrics: Registry): void {
  new Gauge({
    name: 'heimdall_job_next_run_timestamp_seconds',
    help: 'Next tick of each active scheduled job (unix seconds).',
    labelNames: ['job_name'] as const,
    registers: [metrics],
    collect() {
      this.reset();
      for (const e of table.entries()) {
        const next = e.cron.nextRun();
        if (next && !e.cron.isStopped() && e.spec.active) this.set({ job_name: e.spec.name }, next.getTime() / 1000);
      }
    },
  });
}

/**
 * Creates the table; owns the entries and the pauses of config jobs. Config jobs win over API jobs of
 * the same name, whichever came first.
 */
export function createJobTable(options: JobTableOptions): JobTable {
  const { logger } = options;
  const entries = new Map<string, Entry>();
  let pauses = new Map<string, StoredPause>();
  /** A config job's spec with its pause through the API (which holds while the file's `active` is what it was then). */
  const withPause = (declared: JobSpec): JobSpec => {
    const p = pauses.get(declared.name);
    return p && p.configActive === declared.active ? { ...declared, active: !p.paused } : declared;
  };
  const table: JobTable = {
    get: (name) => entries.get(name),
    entries: () => [...entries.values()],
    schedule(spec, source, times, declared) {
      const previous = entries.get(spec.name);
      previous?.cron.stop();
      const e: Entry = { spec, source, declared, running: previous?.running ?? new Set(), lastRun: previous?.lastRun, ...times, cron: undefined as unknown as Cron };
      e.cron = scheduleJob(spec, { onTick: (tickMs) => options.onTick(e, tickMs), onOverlap: () => options.onOverlap(e), onError: (err) => logger.error({ err, job: spec.name }, 'scheduled tick failed') });
      entries.set(spec.name, e);
      options.onChange();
      return e;
    },
    unschedule(name) {
      entries.get(name)?.cron.stop();
      entries.delete(name);
      options.onChange();
    },
    setActive(e, active) {
      if (e.spec.active === active) return;
      e.spec = { ...e.spec, active };
      if (active) e.cron.resume();
      else e.cron.pause();
      options.onChange();
      logger.info({ job: e.spec.name }, active ? 'scheduled job resumed' : 'scheduled job paused');
    },
    setPause: (name, pause) => void pauses.set(name, pause),
    reconcile(configJobs) {
      const wanted = new Map(configJobs.map((j) => [j.name, j]));
      for (const e of [...entries.values()]) if (e.source === 'config' && !wanted.has(e.spec.name)) table.unschedule(e.spec.name);
      const now = Date.now();
      for (const spec of wanted.values()) {
        const e = entries.get(spec.name);
        if (e?.source === 'api') {
          logger.error({ job: spec.name }, 'config job not scheduled: an API job has the same name');
          continue;
        }
        if (e && JSON.stringify(e.declared) === JSON.stringify(spec)) continue;
        table.schedule(withPause(spec), 'config', { createdAt: e?.createdAt ?? now, updatedAt: now }, spec);
      }
    },
    applyStored(state, first) {
      const stored = new Map(state.jobs.map((j) => [j.spec.name, j]));
      for (const e of [...entries.values()]) {
        if (e.source !== 'api' || stored.has(e.spec.name)) continue;
        table.unschedule(e.spec.name);
        logger.info({ job: e.spec.name }, 'scheduled job deleted on another replica');
      }
      for (const s of stored.values()) {
        const e = entries.get(s.spec.name);
        if (e?.source === 'config') {
          if (first) logger.error({ job: s.spec.name }, 'a stored API job has the name of a config job: the config job wins');
          continue;
        }
        if (e && e.updatedAt === s.updatedAt && JSON.stringify(e.spec) === JSON.stringify(s.spec)) continue;
        table.schedule(s.spec, 'api', s);
        if (!first) logger.info({ job: s.spec.name }, e ? 'scheduled job changed on another replica' : 'scheduled job created on another replica');
      }
      pauses = state.pauses;
      for (const e of entries.values()) if (e.declared) table.setActive(e, withPause(e.declared).active);
    },
    stop() {
      for (const e of entries.values()) e.cron.stop();
    },
  };
  return table;
}
