import { hostname } from 'node:os';
import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthRegistry, HealthReporter } from '../health/registry.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { Storage } from '../storage/storage.js';
import type { Logger } from '../telemetry/logger.js';
import type { JobsDeployment } from './deployment.js';
import { JobError } from './errors.js';
import { createRunHistory, type RunFilter, type RunHistory, type RunRecord } from './history.js';
import { createJobSeries, type JobSeries } from './job-series.js';
import { createJobTable, registerNextRunGauge, viewOf, type Entry, type JobTable, type ScheduledView } from './job-table.js';
import { createAddressGuard } from './kinds/address-guard.js';
import { createExport, directoryBytes, exportWindowRefusal, removeStaleParts } from './kinds/export.js';
import { createHttpCheck } from './kinds/http-check.js';
import type { TaskKinds } from './kinds/kind.js';
import type { KindName } from './kinds/params.js';
import { createRetention } from './kinds/retention.js';
import { createSystemCheck } from './kinds/system-check.js';
import { createLeases, type Leases } from './lease.js';
import { createMaintenance } from './maintenance.js';
import { createOnDemandQueue, type OnDemandQueue } from './on-demand-queue.js';
import { createRecovery } from './recovery.js';
import { createRunCaps } from './run-caps.js';
import { createRunner, RunAborted, type LiveRun, type Runner } from './runner.js';
import { createScheduledRuns, runPolicy, type SkippedTicks } from './scheduled-runs.js';
import { configJobs, type JobSpec, type TaskSpec } from './spec.js';
import { createStoredJobs, type StoredJobs } from './stored-jobs.js';
import { createJobStore, type JobStore } from './store.js';
import { createTicks } from './ticks.js';

export type { ScheduledView } from './job-table.js';

/** Options for createJobs. */
export interface JobsOptions extends JobsDeployment {
  /** The `jobs` section: the config file's scheduled jobs (the built-in system check included), caps, export budgets, leases. */
  config: Config['jobs'];
  /** The `query` section: the budgets and widest window of export jobs' storage queries. */
  query: Config['query'];
  storage: Storage;
  pipeline: Pick<Pipeline, 'consume' | 'load'>;
  logger: Logger;
  metrics: Registry;
  health: HealthRegistry;
}

/** The scheduler and job runner. */
export interface Jobs {
  readonly name: 'jobs';
  readonly instance: string;
  /** UNAVAILABLE until the stored jobs are loaded. */
  list(): ScheduledView[];
  /** NOT_FOUND when there is no such job; UNAVAILABLE until the stored jobs are loaded. */
  get(name: string): ScheduledView;
  /** INVALID_ARGUMENT for an export wider than query.max_window (every run would fail). */
  create(spec: JobSpec): Promise<ScheduledView>;
  update(spec: JobSpec): Promise<ScheduledView>;
  remove(name: string): Promise<void>;
  setPaused(name: string, paused: boolean): Promise<ScheduledView>;
  /** Starts a run of the job now; resolves with it once it exists. */
  trigger(name: string): Promise<RunRecord>;
  /**
   * Queues an on-demand job and records it; RESOURCE_EXHAUSTED when the queue is full, INVALID_ARGUMENT
   * for an export wider than query.max_window. A caller bound to `tenant` is held to
   * jobs.tenant_max_timeout (INVALID_ARGUMENT) and jobs.max_submitted_per_tenant (RESOURCE_EXHAUSTED).
   */
  submit(task: TaskSpec, caller?: { tenant?: string | undefined }): Promise<RunRecord>;
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

/** An active scheduled system check: its results set readiness (an on-demand check's only report). */
const checksReadiness = (e: { spec: JobSpec }): boolean => e.spec.kind === 'system-check' && e.spec.active;

/** The task kinds, wired to what they read. */
function createKinds(options: JobsOptions, leases: Leases | undefined, reporter: HealthReporter, table: Pick<JobTable, 'get'>, series: JobSeries): TaskKinds {
  /** The byte budgets the system check scores: the embedded store's, and the export directory's. */
  const budgets = () => [
    ...(options.storage.size ? [{ name: 'embedded store', ...options.storage.size }] : []),
    { name: 'exports', used: directoryBytes(options.config.export_dir), limit: options.config.export_max_size },
  ];
  const refused = new Counter({
    name: 'heimdall_export_refused_total',
    help: 'Export runs failed by a limit, by limit (export_max_size, tenant_export_max_size, max_window, timeout, max_memory).',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  const reportsReadiness = (job: string): boolean => {
    const e = table.get(job);
    return e !== undefined && checksReadiness(e);
  };
  return {
    'system-check': createSystemCheck({ storage: options.storage, pipeline: options.pipeline, pingRedis: leases && (() => leases.ping()), dataPaths: options.dataPaths, budgets, reporter, reportsReadiness, metrics: options.metrics }),
    'http-check': createHttpCheck({ pipeline: options.pipeline, metrics: options.metrics, guard: createAddressGuard(options.config.http_check.allowed_networks), series }),
    retention: createRetention({ storage: options.storage, schema: options.schema }),
    export: createExport({ storage: options.storage, exportDir: options.config.export_dir, maxBytes: options.config.export_max_size, tenantMaxBytes: options.config.tenant_export_max_size, query: options.query, refused }),
  };
}

/**
 * Sets the scheduler's health from the jobs and runs; clears the system check's hold on readiness once
 * none is active; takes the series of deleted and paused jobs off /metrics.
 */
function reportStatus(p: { reporter: HealthReporter; systemReporter: HealthReporter; table: JobTable; runner: Runner; queue: OnDemandQueue; leases: Leases | undefined; instance: string; series: JobSeries }): void {
  p.series.retain((name) => p.table.get(name)?.spec.active === true);
  const list = p.table.entries();
  const paused = list.filter((e) => !e.spec.active).length;
  const cluster = list.filter((e) => e.spec.scope === 'cluster').length;
  const text = `${list.length} scheduled jobs (${paused} paused), ${p.runner.running} running, ${p.queue.length} queued`;
  if (cluster > 0 && !p.leases) p.reporter.set('degraded', `${text}; no redis configured: ${cluster} cluster-scoped jobs run on this replica (every replica runs them)`);
  else p.reporter.set('ready', `${text}${cluster > 0 ? `; cluster jobs lease through redis as ${p.instance}` : ''}`);
  // With no active system check, its last result no longer holds readiness.
  if (!list.some(checksReadiness)) p.systemReporter.set('ready', 'no system check is scheduled');
}

/** INVALID_ARGUMENT for an export wider than query.max_window. */
function mustFitWindow(task: Pick<TaskSpec, 'kind' | 'params'>, maxWindowMs: number): void {
  const window = exportWindowRefusal(task, Date.now(), maxWindowMs);
  if (window) throw new JobError('invalid_argument', window);
}

/** NOT_FOUND when there is no such job (UNAVAILABLE until the stored jobs are loaded). */
function mustGet(table: JobTable, stored: StoredJobs, name: string): Entry {
  const e = table.get(name);
  if (e) return e;
  stored.mustRestored();
  throw new JobError('not_found', `no scheduled job ${JSON.stringify(name)}`);
}

/** The API on scheduled jobs: changes are stored first, then applied to the table. */
function scheduledJobsApi(p: { table: JobTable; stored: StoredJobs; store: JobStore; maxWindowMs: number; logger: Logger }): Pick<Jobs, 'list' | 'get' | 'create' | 'update' | 'remove' | 'setPaused'> {
  const { table, stored, store, logger } = p;
  return {
    list() {
      stored.mustRestored();
      return table.entries().sort((a, b) => a.spec.name.localeCompare(b.spec.name)).map(viewOf);
    },
    get: (name) => viewOf(mustGet(table, stored, name)),
    create: (spec) =>
      stored.exclusive(async () => {
        stored.mustRestored();
        mustFitWindow(spec, p.maxWindowMs);
        if (table.get(spec.name)) throw new JobError('already_exists', `a scheduled job named ${JSON.stringify(spec.name)} exists`);
        const now = Date.now();
        await stored.saved(() => store.put({ spec, createdAt: now, updatedAt: now }));
        logger.info({ job: spec.name, schedule: spec.schedule, kind: spec.kind }, 'scheduled job created');
        return viewOf(table.schedule(spec, 'api', { createdAt: now, updatedAt: now }));
      }),
    update: (spec) =>
      stored.exclusive(async () => {
        mustFitWindow(spec, p.maxWindowMs);
        const e = mustGet(table, stored, spec.name);
        if (e.source === 'config') throw new JobError('failed_precondition', `job ${spec.name} is defined in the config file: change it there`);
        const times = { createdAt: e.createdAt, updatedAt: Date.now() };
        await stored.saved(() => store.put({ spec, ...times }));
        return viewOf(table.schedule(spec, 'api', times));
      }),
    remove: (name) =>
      stored.exclusive(async () => {
        const e = mustGet(table, stored, name);
        if (e.source === 'config') throw new JobError('failed_precondition', `job ${name} is defined in the config file: remove it there`);
        await stored.saved(() => store.remove(name));
        table.unschedule(name);
      }),
    setPaused: (name, paused) =>
      stored.exclusive(async () => {
        const e = mustGet(table, stored, name);
        const updatedAt = Date.now();
        if (e.declared) {
          const pause = { paused, configActive: e.declared.active, updatedAt };
          await stored.saved(() => store.putPause(name, pause));
          table.setPause(name, pause);
        } else {
          await stored.saved(() => store.put({ spec: { ...e.spec, active: !paused }, createdAt: e.createdAt, updatedAt }));
        }
        e.updatedAt = updatedAt;
        table.setActive(e, !paused);
        return viewOf(e);
      }),
  };
}

/** The API on runs: live ones from the runner, ended ones from history. */
function runsApi(p: { runner: Runner; history: RunHistory; queue: OnDemandQueue; storage: Pick<Storage, 'requireReady'>; instance: string }): Pick<Jobs, 'getRun' | 'listRuns' | 'cancel' | 'watch'> {
  const { runner, history, queue, instance } = p;
  return {
    async getRun(id) {
      const l = runner.live(id);
      if (l) return { ...l.record };
      p.storage.requireReady('run history cannot be read');
      return history.get(id);
    },
    async listRuns(filter) {
      p.storage.requireReady('run history cannot be read');
      return history.list(filter);
    },
    async cancel(id) {
      const l = runner.live(id);
      if (!l) {
        p.storage.requireReady('run history cannot be read');
        const r = await history.get(id);
        if (!r) throw new JobError('not_found', `no job ${JSON.stringify(id)}`);
        throw new JobError('failed_precondition', `job ${id} is ${r.status}${r.instance !== instance ? ` on ${r.instance}` : ''}: only a pending or running job of this agent can be cancelled`);
      }
      l.controller.abort(new RunAborted('cancelled'));
      if (!queue.cancelPending(l)) {
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
  };
}

/** Recorded: waits until the run's record is stored, so a crash after the answer cannot lose it; logged when storage fails (it stays waiting). */
const recordedBy = (history: { flush(): Promise<void> }, logger: Logger) => (l: LiveRun): Promise<void> =>
  history.flush().catch((err: unknown) => logger.warn({ err, run: l.record.id }, 'run accepted but not stored yet; stored when storage answers'));

/** The scheduler's component (no gate) and the system check's (strict readiness), as health reports them. */
function registerReporters(health: HealthRegistry): { reporter: HealthReporter; systemReporter: HealthReporter } {
  const reporter = health.register('scheduler', { gate: 'none' });
  const systemReporter = health.register('system-check', { gate: 'strict' });
  systemReporter.set('ready', 'no check has run yet');
  return { reporter, systemReporter };
}

/** heimdall_job_ticks_skipped_total: ticks not run here, by job_name and reason. */
function skippedTicksCounter(metrics: Registry, series: JobSeries): SkippedTicks {
  const counter = new Counter({ name: 'heimdall_job_ticks_skipped_total', help: 'Ticks of scheduled jobs not run here, by job_name and reason (overlap, max-running, scheduler-full, claimed-elsewhere, lease-held, redis-unavailable).', labelNames: ['job_name', 'reason'] as const, registers: [metrics] });
  return (jobName, reason) => counter.inc(series.track(counter, jobName, { reason }));
}

/**
 * Creates the jobs component: croner schedules for scheduled jobs (config and API), a bounded queue
 * of on-demand jobs, run history in storage, and Redis leases for cluster-scoped jobs. It wires the
 * units (table, caps, scheduled runs, ticks, on-demand queue, recovery, stored jobs, maintenance).
 */
export function createJobs(options: JobsOptions): Jobs {
  const logger = options.logger.child({ component: 'jobs' });
  const config = options.config;
  // The config file's jobs, checked now: a bad one fails the agent's construction, not its start.
  const declared = configJobs(config);
  const instance = config.instance ?? process.env.HOSTNAME ?? hostname();
  const { reporter, systemReporter } = registerReporters(options.health);
  const history = createRunHistory({ storage: options.storage, logger });
  const store = createJobStore(options.storage);
  const leases: Leases | undefined = options.redis && createLeases({ target: options.redis.target, keyPrefix: options.redis.keyPrefix, instance, ttlMs: config.lease_ttl, logger });
  const series = createJobSeries();
  const skipped = skippedTicksCounter(options.metrics, series);
  let started = 0;
  let stopped = false;
  const report = (): void => reportStatus({ reporter, systemReporter, table, runner, queue, leases, instance, series });
  const table = createJobTable({ onTick: (e, tickMs) => ticks.tick(e, 'schedule', tickMs), onOverlap: (e) => skipped(e.spec.name, 'overlap'), onChange: report, logger });
  registerNextRunGauge(table, options.metrics);
  const runner = createRunner({ kinds: createKinds(options, leases, systemReporter, table, series), history, pipeline: options.pipeline, instance, logger: options.logger, metrics: options.metrics, series });
  const caps = createRunCaps({ maxScheduledRuns: config.max_scheduled_runs });
  const runs = createScheduledRuns({ runner, caps, leases, skipped, onChange: report, logger });
  const ticks = createTicks({ runs, caps, runner, leases, skipped, current: (e) => !stopped && table.get(e.spec.name) === e, logger });
  const queue = createOnDemandQueue({ maxConcurrent: config.max_concurrent, queueSize: config.queue_size, maxSubmittedPerTenant: config.max_submitted_per_tenant, tenantMaxTimeoutMs: config.tenant_max_timeout, maxWindowMs: options.query.max_window, metrics: options.metrics, runner, stopped: () => stopped, onChange: report });
  const recovery = createRecovery({ history, runner, instance, sharedStorage: options.sharedStorage, leases, entry: (name) => table.get(name), retry: (e, r) => runs.retry(e, r), enqueue: (l) => queue.push(l), logger });
  const stored = createStoredJobs({ store, table, storage: options.storage, logger });
  const maintenance = createMaintenance({
    storage: options.storage,
    resync: () => stored.resync(),
    async restore() {
      // Missed ticks run in the same turn as the load, before a regular tick could make a forbid job
      // skip its catch-up; then interrupted runs, whose retries need the loaded jobs.
      const last = await history.lastTicks(started);
      await stored.resync();
      ticks.runMissed(table.entries(), last, started);
      await recovery.sweep(0);
      removeStaleParts(config.export_dir, (id) => runner.live(id) !== undefined, logger);
    },
    sweep: (since) => recovery.sweep(since),
    storageDown: () => recovery.storageDown(),
    heartbeat: () => runner.heartbeat(),
    count: () => table.entries().length,
    stopped: () => stopped,
    logger,
  });

  return {
    name: 'jobs',
    instance,
    ...scheduledJobsApi({ table, stored, store, maxWindowMs: options.query.max_window, logger }),
    async trigger(name) {
      const l = await runs.trigger(mustGet(table, stored, name));
      await recordedBy(history, logger)(l);
      return { ...l.record };
    },
    async submit(task, caller = {}) {
      if (stopped) throw new JobError('unavailable', 'the agent is shutting down');
      options.storage.requireReady('the job cannot be recorded');
      queue.admit(task, caller.tenant);
      const l = runner.create({ jobName: '', kind: task.kind as KindName, params: task.params, ...runPolicy(task), trigger: 'submit' });
      queue.push(l);
      await recordedBy(history, logger)(l);
      return { ...l.record };
    },
    ...runsApi({ runner, history, queue, storage: options.storage, instance }),
    reconcile: (configJobs) => table.reconcile(configJobs),
    async start() {
      started = Date.now();
      history.start();
      table.reconcile(declared);
      maintenance.start();
    },
    async shutdown(graceMs = 5_000) {
      if (stopped) return;
      stopped = true;
      reporter.set('stopping');
      table.stop();
      await maintenance.shutdown();
      await Promise.all([stored.settled(), recovery.settled()]);
      await runner.stopAll(Math.max(100, graceMs - 1_000));
      await history.shutdown();
      leases?.shutdown();
      logger.info('jobs stopped');
    },
  };
}
