import { hostname } from 'node:os';
import type { Cron } from 'croner';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { formatMs } from '../config/units.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { RedisTarget } from '../redis/client.js';
import type { SchemaContext } from '../storage/migrations/context.js';
import type { Storage } from '../storage/storage.js';
import type { Logger } from '../telemetry/logger.js';
import { createRunHistory, isTerminal, type RunFilter, type RunRecord, type RunTrigger } from './history.js';
import { createExport, directoryBytes, exportWindow, removeStaleParts } from './kinds/export.js';
import { createAddressGuard } from './kinds/address-guard.js';
import { createHttpCheck } from './kinds/http-check.js';
import type { TaskKinds } from './kinds/kind.js';
import { KIND_PARAMS, type KindName } from './kinds/params.js';
import { createRetention } from './kinds/retention.js';
import { createSystemCheck } from './kinds/system-check.js';
import { createLeases, type Lease, type Leases } from './lease.js';
import { createRunner, RunAborted, type LiveRun } from './runner.js';
import { missedTick, scheduleJob } from './schedule.js';
import { SYSTEM_CHECK_JOB, type JobSpec, type TaskSpec } from './spec.js';
import { createJobStore, type StoredPause } from './store.js';

/** Why a jobs operation was refused; the RPC layer maps `code` to a gRPC status once. */
export class JobError extends Error {
  override name = 'JobError';
  constructor(
    readonly code: 'not_found' | 'already_exists' | 'failed_precondition' | 'unavailable' | 'resource_exhausted' | 'invalid_argument',
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
  /** Runs of scheduled jobs at once (the built-in system check aside); a tick past it is skipped. */
  maxScheduledRuns: number;
  exportDir: string;
  /** Bytes the export directory may hold, tenant folders included (`jobs.export_max_size`). */
  exportMaxBytes: number;
  /** Bytes one tenant's export folder may hold (`jobs.tenant_export_max_size`). */
  tenantExportMaxBytes: number;
  /** On-demand jobs of one tenant pending or running at once, past which a tenant-bound caller is refused (`jobs.max_submitted_per_tenant`). */
  maxSubmittedPerTenant: number;
  /** Longest timeout a tenant-bound caller may give a job (`jobs.tenant_max_timeout`). */
  tenantMaxTimeoutMs: number;
  /** The `query` section: the budgets and widest window of export jobs' storage queries. */
  query: Config['query'];
  /** Networks http-check jobs may reach although link-local or cloud metadata (`jobs.http_check.allowed_networks`; default none). */
  httpCheckAllowedNetworks?: readonly string[];
  leaseTtlMs: number;
  /** Storage other agents may share (a ClickHouse server): runs of agents that went away are only retried under a Redis claim. */
  sharedStorage: boolean;
  /** Redis for cluster jobs' leases; without it cluster jobs run on this replica. */
  redis: { target: RedisTarget; keyPrefix: string } | undefined;
  /** Directories the system check watches for free space. */
  dataPaths: readonly string[];
  schema: Pick<SchemaContext, 'onCluster' | 'retention'>;
  storage: Storage;
  pipeline: Pick<Pipeline, 'submit' | 'load' | 'processors'>;
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

/** A cluster lease for a run, or why the run cannot take one here. */
interface LeaseGrant {
  lease?: Lease;
  refused?: string;
}

interface Entry {
  spec: JobSpec;
  source: 'config' | 'api';
  /** A config job as the file has it (`spec` may differ by a pause through the API). */
  declared?: JobSpec;
  cron: Cron;
  running: Set<string>;
  /** Why its ticks are being skipped for want of a slot, while they are (logged once per streak). */
  skipping?: string | undefined;
  lastRun: RunRecord | undefined;
  createdAt: number;
  updatedAt: number;
}

/** Live runs are saved again this often, so other agents can tell their agent is still there. */
const HEARTBEAT_MS = 10_000;
/** Another agent's unfinished run not saved for this long is taken as interrupted. */
const STALE_MS = 60_000;
/** Every this many heartbeats, unfinished runs of the last two days are looked at for stale ones. */
const SWEEP_EVERY = 6;
const SWEEP_WINDOW_MS = 2 * 86_400_000;

/** An active scheduled system check: its results set readiness (an on-demand check's only report). */
const checksReadiness = (e: { spec: JobSpec }): boolean => e.spec.kind === 'system-check' && e.spec.active;

const ms = (spec: JobSpec | TaskSpec) => ({ timeoutMs: spec.timeout, attempts: spec.retry.attempts, backoffMs: spec.retry.backoff });

/**
 * Creates the jobs component: croner schedules for scheduled jobs (config and API), a bounded queue
 * of on-demand jobs, run history in storage, and Redis leases for cluster-scoped jobs.
 */
export function createJobs(options: JobsOptions): Jobs {
  const logger = options.logger.child({ component: 'jobs' });
  const instance = options.instance ?? process.env.HOSTNAME ?? hostname();
  const reporter = options.health.register('scheduler', { gate: 'none' });
  const systemReporter = options.health.register('system-check', { gate: 'strict' });
  systemReporter.set('ready', 'no check has run yet');
  const history = createRunHistory({ storage: options.storage, logger });
  const store = createJobStore(options.storage);
  const leases: Leases | undefined = options.redis && createLeases({ target: options.redis.target, keyPrefix: options.redis.keyPrefix, instance, ttlMs: options.leaseTtlMs, logger });
  const exportRefusals = new Counter({
    name: 'heimdall_export_refused_total',
    help: 'Export runs failed by a limit, by limit (export_max_size, tenant_export_max_size, max_window, timeout, max_memory).',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  const submitRefusals = new Counter({
    name: 'heimdall_job_submit_refused_total',
    help: 'SubmitJob calls refused by a limit, by limit (queue_size, max_submitted_per_tenant, tenant_max_timeout, max_window).',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  /** The byte budgets the system check scores: the embedded store's, and the export directory's. */
  const budgets = () => [
    ...(options.storage.size ? [{ name: 'embedded store', ...options.storage.size }] : []),
    { name: 'exports', used: directoryBytes(options.exportDir), limit: options.exportMaxBytes },
  ];
  const kinds: TaskKinds = {
    'system-check': createSystemCheck({ storage: options.storage, pipeline: options.pipeline, pingRedis: leases && (() => leases.ping()), dataPaths: options.dataPaths, budgets, reporter: systemReporter, reportsReadiness: (job) => entries.has(job) && checksReadiness(entries.get(job) as Entry), metrics: options.metrics }),
    'http-check': createHttpCheck({ pipeline: options.pipeline, metrics: options.metrics, guard: createAddressGuard(options.httpCheckAllowedNetworks ?? []) }),
    retention: createRetention({ storage: options.storage, schema: options.schema }),
    export: createExport({ storage: options.storage, exportDir: options.exportDir, maxBytes: options.exportMaxBytes, tenantMaxBytes: options.tenantExportMaxBytes, query: options.query, refused: exportRefusals }),
  };
  const runner = createRunner({ kinds, history, pipeline: options.pipeline, instance, logger: options.logger, metrics: options.metrics });
  const entries = new Map<string, Entry>();
  const queue: LiveRun[] = [];
  /** On-demand runs running now (the queue holds those pending). */
  const runningOnDemand = new Set<LiveRun>();
  let active = 0;
  /** Runs of scheduled jobs running now, the built-in system check aside (see `bounded`). */
  let scheduledRuns = 0;
  let started = 0;
  let stopped = false;
  let restoring: Promise<void> | undefined;
  /** Set once the stored jobs are loaded: until then API calls on them answer UNAVAILABLE. */
  let restored = false;
  let pauses = new Map<string, StoredPause>();
  let maintenance: NodeJS.Timeout | undefined;
  /** Store writes and loads run one at a time, so a load never undoes a change in flight. */
  let chain: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn);
    chain = p.catch(() => undefined);
    return p;
  };

  const registers = [options.metrics];
  const skipped = new Counter({ name: 'heimdall_job_ticks_skipped_total', help: 'Ticks of scheduled jobs not run here, by job and reason (overlap, max-running, scheduler-full, claimed-elsewhere, lease-held, redis-unavailable).', labelNames: ['job', 'reason'] as const, registers });
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
    // With no active system check, its last result no longer holds readiness.
    if (!list.some(checksReadiness)) systemReporter.set('ready', 'no system check is scheduled');
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

  /** Whether runs of `e` count against jobs.max_scheduled_runs: all but the built-in system check, which user jobs must not starve. */
  const bounded = (e: Entry): boolean => !(e.source === 'config' && e.spec.name === SYSTEM_CHECK_JOB);

  /** Why another run of `e` cannot start now (its own max_running, or jobs.max_scheduled_runs), or undefined when it can. */
  const capped = (e: Entry): { reason: 'max-running' | 'scheduler-full'; message: string } | undefined => {
    const max = e.spec.concurrency === 'forbid' ? 1 : e.spec.max_running;
    const n = e.running.size;
    if (n >= max) return { reason: 'max-running', message: `job ${e.spec.name} has ${n} run${n === 1 ? '' : 's'} running (max_running ${max})` };
    if (bounded(e) && scheduledRuns >= options.maxScheduledRuns) return { reason: 'scheduler-full', message: `${scheduledRuns} runs of scheduled jobs are running (jobs.max_scheduled_runs ${options.maxScheduledRuns})` };
    return undefined;
  };

  let slots = 0;
  /**
   * Takes a slot for a run of `e` before anything is awaited (a cluster claim, a lease), so ticks,
   * triggers and retries at once cannot pass its caps together: the cap that is full instead.
   * Release it on every way out; runEntry, called right after the release, takes it for good.
   */
  const takeSlot = (e: Entry): { release: () => void; cap?: undefined } | { cap: NonNullable<ReturnType<typeof capped>> } => {
    const cap = capped(e);
    if (cap) return { cap };
    const id = `slot:${(slots += 1)}`;
    const counted = bounded(e);
    e.running.add(id);
    if (counted) scheduledRuns += 1;
    return {
      release: () => {
        if (!e.running.delete(id)) return;
        if (counted) scheduledRuns -= 1;
      },
    };
  };

  /** Starts a run of a scheduled job; the run goes on in the background. */
  const runEntry = (e: Entry, trigger: RunTrigger, scheduledTime: number, lease: Lease | undefined, retry?: RunRecord): LiveRun => {
    const l = runner.create({ jobName: e.spec.name, kind: e.spec.kind as KindName, params: e.spec.params, ...ms(e.spec), trigger, scheduledTime, correlationId: retry?.correlationId, attempt: retry && retry.attempt + 1 });
    const counted = bounded(e);
    if (counted) scheduledRuns += 1;
    e.running.add(l.record.id);
    e.lastRun = l.record;
    report();
    void runner.execute(l, { signal: lease?.lost, fence: lease?.fence }).finally(() => {
      if (counted) scheduledRuns -= 1;
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
    // Past a cap the tick is skipped before any cluster claim, so another replica may run it.
    const slot = takeSlot(e);
    if (slot.cap) {
      const cap = slot.cap;
      if (e.skipping !== cap.reason) logger.warn({ job: e.spec.name, tick: new Date(tickMs).toISOString(), reason: cap.reason }, `tick skipped: ${cap.message}; later ticks are skipped (and counted) while it lasts`);
      e.skipping = cap.reason;
      return skip(cap.reason);
    }
    e.skipping = undefined;
    let lease: Lease | undefined;
    if (e.spec.scope === 'cluster' && leases) {
      let refused: string | undefined;
      try {
        if (!(await leases.claimTick(e.spec.name, tickMs))) refused = 'claimed-elsewhere';
        else ({ lease, refused } = await takeLease(e));
      } catch (err) {
        logger.warn({ err, job: e.spec.name }, 'cluster job tick skipped: redis cannot grant its lease');
        refused = 'redis-unavailable';
      }
      if (refused) {
        slot.release();
        return skip(refused);
      }
    }
    slot.release();
    const l = runEntry(e, trigger, tickMs, lease);
    await new Promise<void>((resolve) => {
      if (!runner.live(l.record.id)) return resolve();
      l.listeners.add((r) => {
        if (r.status !== 'pending' && r.status !== 'running') resolve();
      });
      l.controller.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  };

  const schedule = (spec: JobSpec, source: 'config' | 'api', times: { createdAt: number; updatedAt: number }, declared?: JobSpec): Entry => {
    const previous = entries.get(spec.name);
    previous?.cron.stop();
    const e: Entry = { spec, source, declared, running: previous?.running ?? new Set(), lastRun: previous?.lastRun, ...times, cron: undefined as unknown as Cron };
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

  const mustRestored = (): void => {
    if (!restored) throw new JobError('unavailable', 'scheduled jobs are not loaded from storage yet; retry later');
  };
  const mustGet = (name: string): Entry => {
    const e = entries.get(name);
    if (e) return e;
    mustRestored();
    throw new JobError('not_found', `no scheduled job ${JSON.stringify(name)}`);
  };
  const mustStore = (what = 'the job cannot be saved'): void => {
    if (!options.storage.ready) throw new JobError('unavailable', `storage is not ready: ${what}; retry later`);
  };
  /** A store write; a failure answers UNAVAILABLE (nothing changed). */
  const saved = async (write: () => Promise<void>): Promise<void> => {
    mustStore();
    try {
      await write();
    } catch (err) {
      throw new JobError('unavailable', `storage cannot save the job: ${(err as Error).message}; retry later`);
    }
  };

  /** A config job's spec with its pause through the API (which holds while the file's `active` is what it was then). */
  const withPause = (declared: JobSpec): JobSpec => {
    const p = pauses.get(declared.name);
    return p && p.configActive === declared.active ? { ...declared, active: !p.paused } : declared;
  };
  const setActive = (e: Entry, active: boolean): void => {
    if (e.spec.active === active) return;
    e.spec = { ...e.spec, active };
    if (active) e.cron.resume();
    else e.cron.pause();
    report();
    logger.info({ job: e.spec.name }, active ? 'scheduled job resumed' : 'scheduled job paused');
  };

  /** Applies what the store holds: API jobs created, changed or deleted (on this or another replica), and pauses of config jobs. */
  const sync = (): Promise<void> =>
    exclusive(async () => {
      const state = await store.load((name, error) => !restored && logger.error({ job: name, error }, 'stored job is no longer valid: not scheduled'));
      const stored = new Map(state.jobs.map((j) => [j.spec.name, j]));
      for (const e of [...entries.values()]) {
        if (e.source !== 'api' || stored.has(e.spec.name)) continue;
        unschedule(e.spec.name);
        logger.info({ job: e.spec.name }, 'scheduled job deleted on another replica');
      }
      for (const s of stored.values()) {
        const e = entries.get(s.spec.name);
        if (e?.source === 'config') {
          if (!restored) logger.error({ job: s.spec.name }, 'a stored API job has the name of a config job: the config job wins');
          continue;
        }
        if (e && e.updatedAt === s.updatedAt && JSON.stringify(e.spec) === JSON.stringify(s.spec)) continue;
        schedule(s.spec, 'api', s);
        if (restored) logger.info({ job: s.spec.name }, e ? 'scheduled job changed on another replica' : 'scheduled job created on another replica');
      }
      pauses = state.pauses;
      for (const e of entries.values()) if (e.declared) setActive(e, withPause(e.declared).active);
    });

  /** Waits until the run's record is stored, so a crash after the answer cannot lose it; logged when storage fails (it stays waiting). */
  const recorded = (l: LiveRun): Promise<void> =>
    history.flush().catch((err: unknown) => logger.warn({ err, run: l.record.id }, 'run accepted but not stored yet; stored when storage answers'));

  /** Why a job's export would read more than query.max_window (INVALID_ARGUMENT naming the parameter), or undefined. */
  const windowRefusal = (task: Pick<TaskSpec, 'kind' | 'params'>): string | undefined => {
    if (task.kind !== 'export') return undefined;
    const range = exportWindow(KIND_PARAMS.export.parse(task.params), Date.now(), options.query.max_window);
    return 'refused' in range ? `job.params.${range.refused}` : undefined;
  };

  /** Refuses an on-demand job past a limit, naming it (and counting it). */
  const admit = (task: TaskSpec, tenant: string | undefined): void => {
    const refuse = (limit: string, code: JobError['code'], message: string): never => {
      submitRefusals.inc({ limit });
      throw new JobError(code, message);
    };
    const window = windowRefusal(task);
    if (window) refuse('max_window', 'invalid_argument', window);
    if (tenant !== undefined) {
      if (task.timeout > options.tenantMaxTimeoutMs) {
        refuse('tenant_max_timeout', 'invalid_argument', `job.timeout: at most ${formatMs(options.tenantMaxTimeoutMs)} for a token bound to a tenant (jobs.tenant_max_timeout), got ${formatMs(task.timeout)}`);
      }
      const own = [...queue, ...runningOnDemand].filter((l) => (l.record.params as { tenant?: unknown }).tenant === tenant).length;
      if (own >= options.maxSubmittedPerTenant) {
        refuse('max_submitted_per_tenant', 'resource_exhausted', `tenant ${JSON.stringify(tenant)} has ${own} jobs pending or running (jobs.max_submitted_per_tenant ${options.maxSubmittedPerTenant}); retry when one has ended`);
      }
    }
    if (queue.length >= options.queueSize && active >= options.maxConcurrent) {
      refuse('queue_size', 'resource_exhausted', `the job queue is full (${queue.length} waiting, ${active} running; jobs.queue_size ${options.queueSize}); retry later`);
    }
  };

  const pump = (): void => {
    while (!stopped && active < options.maxConcurrent && queue.length > 0) {
      const l = queue.shift();
      if (!l || !runner.live(l.record.id)) continue;
      active += 1;
      runningOnDemand.add(l);
      void runner.execute(l).finally(() => {
        active -= 1;
        runningOnDemand.delete(l);
        pump();
        report();
      });
    }
    report();
  };

  /**
   * Takes over unfinished runs created at or after `since` (ms): this instance's (the agent stopped
   * under them) and, when `foreign`, other instances' that stopped heartbeating (their agent went
   * away). A queued on-demand job that never started goes back in the queue as it was; a run that
   * started is failed (`interrupted`) and retried per its policy. On shared storage with Redis, one
   * agent claims each run; on shared storage without Redis, another instance's run is only marked
   * failed; embedded storage is this agent's alone.
   */
  const recoverInterrupted = async (since: number, foreign: boolean): Promise<void> => {
    const candidates = await history.unfinished(instance, foreign ? Date.now() - STALE_MS : 0, since);
    for (const r of candidates) {
      // Ended or taken in hand here since the query read it (history.get sees states not yet stored).
      const now = runner.live(r.id) ? undefined : await history.get(r.id);
      if (!now || isTerminal(now.status) || runner.live(r.id)) continue;
      const mine = r.instance === instance;
      let retry = mine || !options.sharedStorage;
      if (options.sharedStorage && leases) {
        retry = await leases.claimRun(r.id, r.version ?? 0).catch(() => false);
        if (!retry) continue; // another agent recovers it (or Redis answers at the next sweep)
      }
      if (retry && r.status === 'pending' && !r.jobName) {
        logger.info({ run: r.id, kind: r.kind, from: r.instance }, 'queued job taken back: it never started');
        queue.push(runner.adopt(r));
        pump();
        continue;
      }
      runner.finish(runner.adopt(r), 'failed', `interrupted: ${mine ? 'the agent stopped while it ran' : `its agent ${r.instance} went away (no heartbeat for ${STALE_MS / 1000} s)`}`);
      if (!retry || r.attempt >= r.attempts) continue;
      const e = r.jobName ? entries.get(r.jobName) : undefined;
      // A scheduled job's retry only while it is scheduled and active; another pod's pod-scoped job is that pod's.
      if (r.jobName && (!e || !e.spec.active || (!mine && e.spec.scope === 'pod'))) continue;
      const slot = e && takeSlot(e);
      if (slot?.cap) {
        skipped.inc({ job: r.jobName, reason: slot.cap.reason });
        logger.warn({ run: r.id, job: r.jobName, reason: slot.cap.reason }, `interrupted run not retried: ${slot.cap.message}; the job's next tick runs it`);
        continue;
      }
      logger.info({ run: r.id, job: r.jobName, kind: r.kind, attempt: r.attempt + 1 }, 'retrying an interrupted run');
      if (e) {
        const taken = await takeLease(e).catch((): LeaseGrant => ({ refused: 'redis-unavailable' }));
        slot?.release();
        if (taken.refused) continue;
        runEntry(e, 'retry', r.scheduledTime, taken.lease, r);
      } else {
        queue.push(runner.create({ jobName: '', kind: r.kind as KindName, params: r.params, timeoutMs: r.timeoutMs, attempts: r.attempts, backoffMs: r.backoffMs, trigger: 'retry', correlationId: r.correlationId, attempt: r.attempt + 1 }));
        pump();
      }
    }
    if (candidates.length > 0) await history.flush().catch(() => undefined);
  };

  /** Storage has taken every write since (ms): on shared storage, other agents' runs count as stale only after STALE_MS of it. */
  let storageOkSince = Date.now();
  const foreignSweep = (): boolean => !options.sharedStorage || Date.now() - Math.max(storageOkSince, history.failedAt) >= STALE_MS;
  /** One sweep and one sync at a time. */
  let sweeping: Promise<void> | undefined;
  let syncing: Promise<void> | undefined;
  const sweep = (since: number): Promise<void> => (sweeping ??= recoverInterrupted(since, foreignSweep()).finally(() => (sweeping = undefined)));
  const resync = (): Promise<void> => (syncing ??= sync().finally(() => (syncing = undefined)));

  /** Once storage is ready: API jobs, interrupted runs, missed ticks. Retries until storage answers. */
  const restore = async (): Promise<void> => {
    for (;;) {
      while (!stopped && !options.storage.ready) await new Promise((r) => setTimeout(r, 200));
      if (stopped) return;
      try {
        await resync();
        restored = true;
        await sweep(0);
        removeStaleParts(options.exportDir, (id) => runner.live(id) !== undefined, logger);
        const last = await history.lastTicks();
        for (const e of entries.values()) {
          if (e.spec.misfire !== 'run-once' || !e.spec.active) continue;
          const missed = missedTick(e.cron, last.get(e.spec.name), started);
          if (missed === undefined) continue;
          logger.info({ job: e.spec.name, tick: new Date(missed).toISOString() }, 'running a tick missed while the agent was down');
          void tick(e, 'misfire', missed);
        }
        if (stopped) return;
        logger.info({ jobs: entries.size }, 'jobs restored');
        startMaintenance();
        return;
      } catch (err) {
        logger.warn({ err }, 'cannot restore jobs yet; retrying');
        await new Promise((r) => setTimeout(r, 2_000));
      }
    }
  };

  /** Heartbeats of live runs; changes made on other replicas; runs whose agent went away. */
  const startMaintenance = (): void => {
    let round = 0;
    maintenance = setInterval(() => {
      runner.heartbeat();
      if (!options.storage.ready) {
        storageOkSince = Date.now();
        return;
      }
      resync().catch((err: unknown) => logger.debug({ err }, 'cannot read stored jobs; retrying'));
      round += 1;
      if (round % SWEEP_EVERY === 0) sweep(Date.now() - SWEEP_WINDOW_MS).catch((err: unknown) => logger.warn({ err }, 'cannot look for interrupted runs; retrying'));
    }, HEARTBEAT_MS);
    maintenance.unref();
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
      if (e && JSON.stringify(e.declared) === JSON.stringify(spec)) continue;
      schedule(withPause(spec), 'config', { createdAt: e?.createdAt ?? now, updatedAt: now }, spec);
    }
  };

  return {
    name: 'jobs',
    instance,
    list() {
      mustRestored();
      return [...entries.values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name)).map(view);
    },
    get: (name) => view(mustGet(name)),
    create: (spec) =>
      exclusive(async () => {
        mustRestored();
        const window = windowRefusal(spec);
        if (window) throw new JobError('invalid_argument', window);
        if (entries.has(spec.name)) throw new JobError('already_exists', `a scheduled job named ${JSON.stringify(spec.name)} exists`);
        const now = Date.now();
        await saved(() => store.put({ spec, createdAt: now, updatedAt: now }));
        logger.info({ job: spec.name, schedule: spec.schedule, kind: spec.kind }, 'scheduled job created');
        return view(schedule(spec, 'api', { createdAt: now, updatedAt: now }));
      }),
    update: (spec) =>
      exclusive(async () => {
        const window = windowRefusal(spec);
        if (window) throw new JobError('invalid_argument', window);
        const e = mustGet(spec.name);
        if (e.source === 'config') throw new JobError('failed_precondition', `job ${spec.name} is defined in the config file: change it there`);
        const times = { createdAt: e.createdAt, updatedAt: Date.now() };
        await saved(() => store.put({ spec, ...times }));
        return view(schedule(spec, 'api', times));
      }),
    remove: (name) =>
      exclusive(async () => {
        const e = mustGet(name);
        if (e.source === 'config') throw new JobError('failed_precondition', `job ${name} is defined in the config file: remove it there`);
        await saved(() => store.remove(name));
        unschedule(name);
      }),
    setPaused: (name, paused) =>
      exclusive(async () => {
        const e = mustGet(name);
        const updatedAt = Date.now();
        if (e.declared) {
          const pause = { paused, configActive: e.declared.active, updatedAt };
          await saved(() => store.putPause(name, pause));
          pauses.set(name, pause);
        } else {
          await saved(() => store.put({ spec: { ...e.spec, active: !paused }, createdAt: e.createdAt, updatedAt }));
        }
        e.updatedAt = updatedAt;
        setActive(e, !paused);
        return view(e);
      }),
    async trigger(name) {
      const e = mustGet(name);
      if (e.spec.concurrency === 'forbid' && e.running.size > 0) throw new JobError('failed_precondition', `job ${name} is running (concurrency forbid); wait for its run to end`);
      const slot = takeSlot(e);
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
      const l = runEntry(e, 'manual', 0, taken.lease);
      await recorded(l);
      return { ...l.record };
    },
    async submit(task, caller = {}) {
      if (stopped) throw new JobError('unavailable', 'the agent is shutting down');
      mustStore('the job cannot be recorded');
      admit(task, caller.tenant);
      const l = runner.create({ jobName: '', kind: task.kind as KindName, params: task.params, ...ms(task), trigger: 'submit' });
      queue.push(l);
      pump();
      await recorded(l);
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
      clearInterval(maintenance);
      reporter.set('stopping');
      for (const e of entries.values()) e.cron.stop();
      await restoring;
      await Promise.allSettled([syncing, sweeping]);
      await runner.stopAll(Math.max(100, graceMs - 1_000));
      await history.shutdown();
      leases?.shutdown();
      logger.info('jobs stopped');
    },
  };
}
