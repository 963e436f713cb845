import { hostname } from 'node:os';
import type { Cron } from 'croner';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { HealthRegistry } from '../health/registry.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { RedisTarget } from '../ratelimit/backends.js';
import type { SchemaContext } from '../storage/migrations/context.js';
import type { Storage } from '../storage/storage.js';
import type { Logger } from '../telemetry/logger.js';
import { createRunHistory, type RunFilter, type RunRecord, type RunTrigger } from './history.js';
import { createExport } from './kinds/export.js';
import { createHttpCheck } from './kinds/http-check.js';
import type { TaskKinds } from './kinds/kind.js';
import type { KindName } from './kinds/params.js';
import { createRetention } from './kinds/retention.js';
import { createSystemCheck } from './kinds/system-check.js';
import { createLeases, type Lease, type Leases } from './lease.js';
import { createRunner, RunAborted, type LiveRun } from './runner.js';
import { missedTick, scheduleJob } from './schedule.js';
import type { JobSpec, TaskSpec } from './spec.js';
import { createJobStore } from './store.js';

/** Why a jobs operation was refused; the RPC layer maps `code` to a gRPC status once. */
export class JobError extends Error {
  override name = 'JobError';
  constructor(
    readonly code: 'not_found' | 'already_exists' | 'failed_precondition' | 'unavailable' | 'resource_exhausted',
    message: string,
  ) {
    super(message);
  }
}

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

/** Options for createJobs. */
export interface JobsOptions {
  /** Jobs from the config file (the built-in system check included). */
  configJobs: readonly JobSpec[];
  /** Names this agent in run records and leases. */
  instance: string | undefined;
  maxConcurrent: number;
  queueSize: number;
  exportDir: string;
  leaseTtlMs: number;
  /** Redis for cluster jobs' leases; without it cluster jobs run on this replica. */
  redis: { target: RedisTarget; keyPrefix: string } | undefined;
  /** Directories the system check watches for free space. */
  dataPaths: readonly string[];
  schema: Pick<SchemaContext, 'onCluster' | 'retention'>;
  storage: Storage;
  pipeline: Pick<Pipeline, 'submit' | 'load'>;
  logger: Logger;
  metrics: Registry;
  health: HealthRegistry;
}

/** The scheduler and job runner. */
export interface Jobs {
  readonly name: 'jobs';
  readonly instance: string;
  list(): ScheduledView[];
  /** NOT_FOUND when there is no such job. */
  get(name: string): ScheduledView;
  create(spec: JobSpec): Promise<ScheduledView>;
  update(spec: JobSpec): Promise<ScheduledView>;
  remove(name: string): Promise<void>;
  setPaused(name: string, paused: boolean): Promise<ScheduledView>;
  /** Starts a run of the job now; resolves with it once it exists. */
  trigger(name: string): Promise<RunRecord>;
  /** Queues an on-demand job; RESOURCE_EXHAUSTED when the queue is full. */
  submit(task: TaskSpec): RunRecord;
  getRun(id: string): Promise<RunRecord | undefined>;
  listRuns(filter: RunFilter): Promise<RunRecord[]>;
  /** Cancels a pending or running run of this agent. */
  cancel(id: string): Promise<RunRecord>;
  /** Calls `listener` at every change of a live run until it ends; undefined when the run is not live here. */
  watch(id: string, listener: (r: RunRecord) => void): (() => void) | undefined;
  /** Applies the config file's jobs: adds, replaces and removes config-defined jobs. */
  reconcile(configJobs: readonly JobSpec[]): void;
  start(): Promise<void>;
  /** Stops the schedules, aborts runs (left for the next start to retry), flushes history. Safe to call twice. */
  shutdown(graceMs?: number): Promise<void>;
}

/** A cluster lease for a run, or why the run cannot take one here. */
interface LeaseGrant {
  lease?: Lease;
  refused?: string;
}

interface Entry {
  spec: JobSpec;
  source: 'config' | 'api';
  cron: Cron;
  running: Set<string>;
  lastRun: RunRecord | undefined;
  createdAt: number;
  updatedAt: number;
}

const ms = (spec: JobSpec | TaskSpec) => ({ timeoutMs: spec.timeout, attempts: spec.retry.attempts, backoffMs: spec.retry.backoff });

/**
 * Creates the jobs component: croner schedules for scheduled jobs (config and API), a bounded queue
 * of on-demand jobs, run history in storage, and Redis leases for cluster-scoped jobs.
 */
export function createJobs(options: JobsOptions): Jobs {
  const logger = options.logger.child({ component: 'jobs' });
  const instance = options.instance ?? process.env.HOSTNAME ?? hostname();
  const reporter = options.health.register('scheduler', { critical: false });
  const systemReporter = options.health.register('system-check');
  systemReporter.set('ready', 'no check has run yet');
  const history = createRunHistory({ storage: options.storage, logger });
  const store = createJobStore(options.storage);
  const leases: Leases | undefined = options.redis && createLeases({ target: options.redis.target, keyPrefix: options.redis.keyPrefix, instance, ttlMs: options.leaseTtlMs, logger });
  const kinds: TaskKinds = {
    'system-check': createSystemCheck({ storage: options.storage, pipeline: options.pipeline, pingRedis: leases && (() => leases.ping()), dataPaths: options.dataPaths, reporter: systemReporter, metrics: options.metrics }),
    'http-check': createHttpCheck({ pipeline: options.pipeline, metrics: options.metrics }),
    retention: createRetention({ storage: options.storage, schema: options.schema }),
    export: createExport({ storage: options.storage, exportDir: options.exportDir }),
  };
  const runner = createRunner({ kinds, history, pipeline: options.pipeline, instance, logger: options.logger, metrics: options.metrics });
  const entries = new Map<string, Entry>();
  const queue: LiveRun[] = [];
  let active = 0;
  let started = 0;
  let stopped = false;
  let restoring: Promise<void> | undefined;

  const registers = [options.metrics];
  const skipped = new Counter({ name: 'heimdall_job_ticks_skipped_total', help: 'Ticks of scheduled jobs not run here, by job and reason (overlap, claimed-elsewhere, lease-held, redis-unavailable).', labelNames: ['job', 'reason'] as const, registers });
  new Gauge({
    name: 'heimdall_job_next_run_timestamp_seconds',
    help: 'Next tick of each active scheduled job (unix seconds).',
    labelNames: ['job'] as const,
    registers,
    collect() {
      this.reset();
      for (const e of entries.values()) {
        const next = e.cron.nextRun();
        if (next && !e.cron.isStopped() && e.spec.active) this.set({ job: e.spec.name }, next.getTime() / 1000);
      }
    },
  });
  new Gauge({ name: 'heimdall_job_queue_depth', help: 'On-demand jobs waiting to run.', registers, collect() { this.set(queue.length); } });

  const report = (): void => {
    const list = [...entries.values()];
    const paused = list.filter((e) => !e.spec.active).length;
    const cluster = list.filter((e) => e.spec.scope === 'cluster').length;
    const text = `${list.length} scheduled jobs (${paused} paused), ${runner.running} running, ${queue.length} queued`;
    if (cluster > 0 && !leases) reporter.set('degraded', `${text}; no redis configured: ${cluster} cluster-scoped jobs run on this replica (every replica runs them)`);
    else reporter.set('ready', `${text}${cluster > 0 ? `; cluster jobs lease through redis as ${instance}` : ''}`);
  };

  const view = (e: Entry): ScheduledView => ({
    spec: e.spec,
    source: e.source,
    paused: !e.spec.active,
    nextRun: e.spec.active ? (e.cron.nextRun() ?? undefined) : undefined,
    lastRun: e.lastRun && { ...e.lastRun },
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  });

  /** Starts a run of a scheduled job; the run goes on in the background. */
  const runEntry = (e: Entry, trigger: RunTrigger, scheduledTime: number, lease: Lease | undefined, retry?: RunRecord): LiveRun => {
    const l = runner.create({ jobName: e.spec.name, kind: e.spec.kind as KindName, params: e.spec.params, ...ms(e.spec), trigger, scheduledTime, correlationId: retry?.correlationId, attempt: retry && retry.attempt + 1 });
    e.running.add(l.record.id);
    e.lastRun = l.record;
    report();
    void runner.execute(l, { signal: lease?.lost, fence: lease?.fence }).finally(() => {
      e.running.delete(l.record.id);
      report();
      return lease?.release();
    });
    return l;
  };

  /** The cluster lease for a run of `e`, or why it cannot run here. */
  const takeLease = async (e: Entry): Promise<LeaseGrant> => {
    if (e.spec.scope !== 'cluster' || !leases || e.spec.concurrency === 'allow') return {};
    const lease = await leases.acquire(e.spec.name);
    return lease ? { lease } : { refused: 'lease-held' };
  };

  /** One tick of a scheduled job (from croner, or a missed one at start). Resolves when the run ends, so croner's protection sees it. */
  const tick = async (e: Entry, trigger: RunTrigger, tickMs: number): Promise<void> => {
    if (stopped || entries.get(e.spec.name) !== e) return;
    const skip = (reason: string): void => {
      skipped.inc({ job: e.spec.name, reason });
      logger.debug({ job: e.spec.name, tick: new Date(tickMs).toISOString(), reason }, 'tick not run here');
    };
    if (e.spec.concurrency === 'forbid' && e.running.size > 0) return skip('overlap');
    let lease: Lease | undefined;
    if (e.spec.scope === 'cluster' && leases) {
      try {
        if (!(await leases.claimTick(e.spec.name, tickMs))) return skip('claimed-elsewhere');
        const taken = await takeLease(e);
        if (taken.refused) return skip(taken.refused);
        lease = taken.lease;
      } catch (err) {
        logger.warn({ err, job: e.spec.name }, 'cluster job tick skipped: redis cannot grant its lease');
        return skip('redis-unavailable');
      }
    }
    const l = runEntry(e, trigger, tickMs, lease);
    await new Promise<void>((resolve) => {
      if (!runner.live(l.record.id)) return resolve();
      l.listeners.add((r) => {
        if (r.status !== 'pending' && r.status !== 'running') resolve();
      });
      l.controller.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  };

  const schedule = (spec: JobSpec, source: 'config' | 'api', times: { createdAt: number; updatedAt: number }): Entry => {
    const previous = entries.get(spec.name);
    previous?.cron.stop();
    const e: Entry = { spec, source, running: previous?.running ?? new Set(), lastRun: previous?.lastRun, ...times, cron: undefined as unknown as Cron };
    e.cron = scheduleJob(spec, {
      onTick: (tickMs) => tick(e, 'schedule', tickMs),
      onOverlap: () => skipped.inc({ job: spec.name, reason: 'overlap' }),
      onError: (err) => logger.error({ err, job: spec.name }, 'scheduled tick failed'),
    });
    entries.set(spec.name, e);
    report();
    return e;
  };

  const unschedule = (name: string): void => {
    entries.get(name)?.cron.stop();
    entries.delete(name);
    report();
  };

  const mustGet = (name: string): Entry => {
    const e = entries.get(name);
    if (!e) throw new JobError('not_found', `no scheduled job ${JSON.stringify(name)}`);
    return e;
  };
  const mustStore = (what = 'the job cannot be saved'): void => {
    if (!options.storage.ready) throw new JobError('unavailable', `storage is not ready: ${what}; retry later`);
  };

  const pump = (): void => {
    while (!stopped && active < options.maxConcurrent && queue.length > 0) {
      const l = queue.shift();
      if (!l || !runner.live(l.record.id)) continue;
      active += 1;
      void runner.execute(l).finally(() => {
        active -= 1;
        pump();
        report();
      });
    }
    report();
  };

  /** Marks runs the agent stopped under as failed (interrupted) and retries them per their policy. */
  const recoverInterrupted = async (): Promise<void> => {
    const unfinished = (await history.unfinished(instance)).filter((r) => !runner.live(r.id));
    for (const r of unfinished) {
      runner.finish(runner.adopt(r), 'failed', 'interrupted: the agent stopped while it ran');
      if (r.attempt >= r.attempts) continue;
      const e = r.jobName ? entries.get(r.jobName) : undefined;
      if (r.jobName && !e) continue;
      logger.info({ run: r.id, job: r.jobName, kind: r.kind, attempt: r.attempt + 1 }, 'retrying an interrupted run');
      if (e) {
        const taken = await takeLease(e).catch((): LeaseGrant => ({ refused: 'redis-unavailable' }));
        if (taken.refused) continue;
        runEntry(e, 'retry', r.scheduledTime, taken.lease, r);
      } else {
        queue.push(runner.create({ jobName: '', kind: r.kind as KindName, params: r.params, timeoutMs: r.timeoutMs, attempts: r.attempts, backoffMs: r.backoffMs, trigger: 'retry', correlationId: r.correlationId, attempt: r.attempt + 1 }));
        pump();
      }
    }
  };

  /** Once storage is ready: API jobs, interrupted runs, missed ticks. Retries until storage answers. */
  const restore = async (): Promise<void> => {
    for (;;) {
      while (!stopped && !options.storage.ready) await new Promise((r) => setTimeout(r, 200));
      if (stopped) return;
      try {
        for (const s of await store.load((name, error) => logger.error({ job: name, error }, 'stored job is no longer valid: not scheduled'))) {
          if (entries.get(s.spec.name)?.source === 'config') {
            logger.error({ job: s.spec.name }, 'a stored API job has the name of a config job: the config job wins');
            continue;
          }
          schedule(s.spec, 'api', s);
        }
        await recoverInterrupted();
        const last = await history.lastTicks();
        for (const e of entries.values()) {
          if (e.spec.misfire !== 'run-once' || !e.spec.active) continue;
          const missed = missedTick(e.cron, last.get(e.spec.name), started);
          if (missed === undefined) continue;
          logger.info({ job: e.spec.name, tick: new Date(missed).toISOString() }, 'running a tick missed while the agent was down');
          void tick(e, 'misfire', missed);
        }
        logger.info({ jobs: entries.size }, 'jobs restored');
        return;
      } catch (err) {
        logger.warn({ err }, 'cannot restore jobs yet; retrying');
        await new Promise((r) => setTimeout(r, 2_000));
      }
    }
  };

  const reconcile = (configJobs: readonly JobSpec[]): void => {
    const wanted = new Map(configJobs.map((j) => [j.name, j]));
    for (const e of [...entries.values()]) if (e.source === 'config' && !wanted.has(e.spec.name)) unschedule(e.spec.name);
    const now = Date.now();
    for (const spec of wanted.values()) {
      const e = entries.get(spec.name);
      if (e?.source === 'api') {
        logger.error({ job: spec.name }, 'config job not scheduled: an API job has the same name');
        continue;
      }
      if (e && JSON.stringify(e.spec) === JSON.stringify(spec)) continue;
      schedule(spec, 'config', { createdAt: e?.createdAt ?? now, updatedAt: now });
    }
  };

  return {
    name: 'jobs',
    instance,
    list: () => [...entries.values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name)).map(view),
    get: (name) => view(mustGet(name)),
    async create(spec) {
      if (entries.has(spec.name)) throw new JobError('already_exists', `a scheduled job named ${JSON.stringify(spec.name)} exists`);
      mustStore();
      const now = Date.now();
      await store.put({ spec, createdAt: now, updatedAt: now });
      logger.info({ job: spec.name, schedule: spec.schedule, kind: spec.kind }, 'scheduled job created');
      return view(schedule(spec, 'api', { createdAt: now, updatedAt: now }));
    },
    async update(spec) {
      const e = mustGet(spec.name);
      if (e.source === 'config') throw new JobError('failed_precondition', `job ${spec.name} is defined in the config file: change it there`);
      mustStore();
      const times = { createdAt: e.createdAt, updatedAt: Date.now() };
      await store.put({ spec, ...times });
      return view(schedule(spec, 'api', times));
    },
    async remove(name) {
      const e = mustGet(name);
      if (e.source === 'config') throw new JobError('failed_precondition', `job ${name} is defined in the config file: remove it there`);
      mustStore();
      await store.remove(name);
      unschedule(name);
    },
    async setPaused(name, paused) {
      const e = mustGet(name);
      const spec = { ...e.spec, active: !paused };
      const times = { createdAt: e.createdAt, updatedAt: Date.now() };
      if (e.source === 'api') {
        mustStore();
        await store.put({ spec, ...times });
      }
      e.spec = spec;
      e.updatedAt = times.updatedAt;
      if (paused) e.cron.pause();
      else e.cron.resume();
      report();
      logger.info({ job: name }, paused ? 'scheduled job paused' : 'scheduled job resumed');
      return view(e);
    },
    async trigger(name) {
      const e = mustGet(name);
      if (e.spec.concurrency === 'forbid' && e.running.size > 0) throw new JobError('failed_precondition', `job ${name} is running (concurrency forbid); wait for its run to end`);
      let taken: LeaseGrant;
      try {
        taken = await takeLease(e);
      } catch (err) {
        throw new JobError('unavailable', `redis cannot grant job ${name} its lease: ${(err as Error).message}`);
      }
      if (taken.refused) throw new JobError('failed_precondition', `job ${name} is running on another replica`);
      return { ...runEntry(e, 'manual', 0, taken.lease).record };
    },
    submit(task) {
      if (stopped) throw new JobError('unavailable', 'the agent is shutting down');
      if (queue.length >= options.queueSize && active >= options.maxConcurrent) {
        throw new JobError('resource_exhausted', `the job queue is full (${queue.length} waiting, ${active} running; jobs.queue_size ${options.queueSize}); retry later`);
      }
      const l = runner.create({ jobName: '', kind: task.kind as KindName, params: task.params, ...ms(task), trigger: 'submit' });
      queue.push(l);
      pump();
      return { ...l.record };
    },
    async getRun(id) {
      const l = runner.live(id);
      if (l) return { ...l.record };
      mustStore('run history cannot be read');
      return history.get(id);
    },
    async listRuns(filter) {
      mustStore('run history cannot be read');
      return history.list(filter);
    },
    async cancel(id) {
      const l = runner.live(id);
      if (!l) {
        mustStore('run history cannot be read');
        const r = await history.get(id);
        if (!r) throw new JobError('not_found', `no job ${JSON.stringify(id)}`);
        throw new JobError('failed_precondition', `job ${id} is ${r.status}${r.instance !== instance ? ` on ${r.instance}` : ''}: only a pending or running job of this agent can be cancelled`);
      }
      const i = queue.indexOf(l);
      l.controller.abort(new RunAborted('cancelled'));
      if (i >= 0) {
        queue.splice(i, 1);
        runner.finish(l, 'cancelled', 'cancelled before it started');
        report();
      } else {
        await new Promise<void>((resolve) => {
          if (!runner.live(id)) return resolve();
          l.listeners.add((r) => r.status !== 'running' && resolve());
        });
      }
      return { ...l.record };
    },
    watch(id, listener) {
      const l = runner.live(id);
      if (!l) return undefined;
      l.listeners.add(listener);
      return () => l.listeners.delete(listener);
    },
    reconcile,
    async start() {
      started = Date.now();
      history.start();
      reconcile(options.configJobs);
      restoring = restore();
    },
    async shutdown(graceMs = 5_000) {
      if (stopped) return;
      stopped = true;
      reporter.set('stopping');
      for (const e of entries.values()) e.cron.stop();
      await restoring;
      await runner.stopAll(Math.max(100, graceMs - 1_000));
      await history.shutdown();
      leases?.shutdown();
      logger.info('jobs stopped');
    },
  };
}
