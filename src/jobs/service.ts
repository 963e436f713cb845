import { setTimeout as sleep } from 'node:timers/promises';
import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { durationMs, timestampFromMs, type Duration, type DurationSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { z } from 'zod';
import { formatIssue } from '../config/load.js';
import { Concurrency, JobScope, JobService, JobSource, JobStatus, JobTrigger, MisfirePolicy, type JobSchema, type RetryPolicy, type ScheduledJob, type ScheduledJobSchema } from '../gen/heimdall/v1/jobs_pb.js';
import { AgentError, invalidFields, type FieldViolation } from '../errors/agent-error.js';
import { decodeCursor, encodeCursor, filterHash } from '../paging/cursor.js';
import type { ServiceRegistrar } from '../server/service-registry.js';
import type { CallContext } from '../server/grpc-service.js';
import { HOUR_NS, timeRange } from '../time/range.js';
import { isTerminal, type RunFilter, type RunRecord, type RunStatus, type RunTrigger } from './history.js';
import type { Jobs, ScheduledView } from './jobs.js';
import { jobSpecSchema, taskSchema } from './spec.js';

const STATUS: Record<RunStatus, JobStatus> = {
  pending: JobStatus.PENDING,
  running: JobStatus.RUNNING,
  succeeded: JobStatus.SUCCEEDED,
  failed: JobStatus.FAILED,
  cancelled: JobStatus.CANCELLED,
};
const TRIGGER: Record<RunTrigger, JobTrigger> = {
  schedule: JobTrigger.SCHEDULE,
  manual: JobTrigger.MANUAL,
  submit: JobTrigger.SUBMIT,
  misfire: JobTrigger.MISFIRE,
  retry: JobTrigger.RETRY,
};
const byValue = <K extends string, V>(m: Record<K, V>): Map<V, K> => new Map(Object.entries(m).map(([k, v]) => [v as V, k as K]));
const STATUS_NAME = byValue(STATUS);
const TRIGGER_NAME = byValue(TRIGGER);

const ts = (ms: number) => (ms > 0 ? timestampFromMs(ms) : undefined);
const dur = (ms: number): MessageInitShape<typeof DurationSchema> => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });

/** A protobuf message's fields validated by a zod schema; invalid_argument naming every bad field under `prefix` (all of them in the message). */
function validate<S extends z.ZodType>(schema: S, input: unknown, prefix: string): z.output<S> {
  const r = schema.safeParse(input, { reportInput: true });
  if (r.success) return r.data;
  const lines = r.error.issues.flatMap((i) => formatIssue({ ...i, path: [prefix, ...i.path] }));
  // Each line reads "<field>: <what is wrong>" (the prefix makes every path non-empty).
  const violations: FieldViolation[] = lines.map((line) => {
    const at = line.indexOf(': ');
    return { field: line.slice(0, at), description: line.slice(at + 2) };
  });
  throw new AgentError('invalid_argument', lines.join('; '), undefined, violations);
}

const durationOrDefault = (d: Duration | undefined): number | undefined => (d ? durationMs(d) : undefined);
const retryInput = (r: RetryPolicy | undefined) => ({ ...(r?.attempts ? { attempts: r.attempts } : {}), ...(r?.backoff ? { backoff: durationMs(r.backoff) } : {}) });

/** A ScheduledJob message as the spec schema reads it (absent fields take the schema's defaults). */
function specInput(j: ScheduledJob | undefined): Record<string, unknown> {
  if (!j) return {};
  return {
    name: j.name,
    schedule: j.schedule,
    ...(j.timeZone ? { time_zone: j.timeZone } : {}),
    kind: j.kind,
    params: j.params ?? {},
    active: !j.paused,
    ...(j.timeout ? { timeout: durationOrDefault(j.timeout) } : {}),
    retry: retryInput(j.retry),
    concurrency: j.concurrency === Concurrency.ALLOW ? 'allow' : 'forbid',
    ...(j.maxRunning ? { max_running: j.maxRunning } : {}),
    misfire: j.misfire === MisfirePolicy.RUN_ONCE ? 'run-once' : 'skip',
    scope: j.scope === JobScope.CLUSTER ? 'cluster' : 'pod',
  };
}

/** A run as the API shows it. */
export function toJob(r: RunRecord): MessageInitShape<typeof JobSchema> {
  return {
    id: r.id,
    jobName: r.jobName,
    kind: r.kind,
    params: r.params as JsonObject,
    trigger: TRIGGER[r.trigger],
    status: STATUS[r.status],
    attempt: r.attempt,
    progress: r.progress,
    message: r.message,
    error: r.error,
    result: r.result as JsonObject,
    correlationId: r.correlationId,
    instance: r.instance,
    scheduledTime: ts(r.scheduledTime),
    createdAt: ts(r.createdAt),
    startedAt: ts(r.startedAt),
    endedAt: ts(r.endedAt),
    fence: BigInt(r.fence),
  };
}

function toScheduled(v: ScheduledView): MessageInitShape<typeof ScheduledJobSchema> {
  const s = v.spec;
  return {
    name: s.name,
    schedule: s.schedule,
    timeZone: s.time_zone,
    kind: s.kind,
    params: s.params as JsonObject,
    paused: v.paused,
    timeout: dur(s.timeout),
    retry: { attempts: s.retry.attempts, backoff: dur(s.retry.backoff) },
    concurrency: s.concurrency === 'allow' ? Concurrency.ALLOW : Concurrency.FORBID,
    maxRunning: s.max_running,
    misfire: s.misfire === 'run-once' ? MisfirePolicy.RUN_ONCE : MisfirePolicy.SKIP,
    scope: s.scope === 'cluster' ? JobScope.CLUSTER : JobScope.POD,
    source: v.source === 'config' ? JobSource.CONFIG : JobSource.API,
    nextRunTime: v.nextRun && timestampFromMs(v.nextRun.getTime()),
    lastRun: v.lastRun && toJob(v.lastRun),
    createdAt: ts(v.createdAt),
    updatedAt: ts(v.updatedAt),
  };
}

const MAX_PAGE = 1000;

/** One page of runs: the filters, the time range (pinned by the first page) and the last id seen travel in the token. */
async function page(jobs: Jobs, f: Omit<RunFilter, 'start' | 'end' | 'limit' | 'beforeId'>, req: { startTime?: Timestamp | undefined; endTime?: Timestamp | undefined; pageSize: number; pageToken: string }) {
  if (req.pageSize > MAX_PAGE) throw invalidFields([{ field: 'page_size', description: `at most ${MAX_PAGE}` }]);
  const limit = req.pageSize || 100;
  const hash = filterHash(f);
  let start: bigint;
  let end: bigint;
  let beforeId: string | undefined;
  if (req.pageToken) {
    const c = decodeCursor(req.pageToken, hash);
    [start, end, beforeId] = [BigInt(c.start), BigInt(c.end), c.lastId];
  } else ({ start, end } = timeRange(req.startTime, req.endTime, 24n * HOUR_NS));
  const runs = await jobs.listRuns({ ...f, start: Number(start / 1_000_000n), end: Number(end / 1_000_000n), beforeId, limit: limit + 1 });
  const more = runs.length > limit;
  const shown = runs.slice(0, limit);
  const last = shown[shown.length - 1];
  const next = more && last ? encodeCursor({ start: start.toString(), end: end.toString(), lastTime: String(last.createdAt), lastId: last.id, filters: hash }) : '';
  return { runs: shown.map(toJob), next };
}

/** How often a run that is not live here (another replica's, or one being recovered) is read again. */
const WATCH_POLL_MS = 1_000;

/**
 * Sends every change of a run after `first` until it ends (or `signal` aborts): pushed by the run
 * while this agent runs it, read from history once a second while it is elsewhere.
 */
async function follow(jobs: Jobs, first: RunRecord, send: (r: RunRecord) => Promise<void>, signal: AbortSignal): Promise<void> {
  let last = first;
  const emit = async (r: RunRecord): Promise<void> => {
    if (r.status === last.status && r.progress === last.progress && r.message === last.message && r.attempt === last.attempt) return;
    last = r;
    await send(r);
  };
  let wake: (() => void) | undefined;
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!isTerminal(last.status) && !signal.aborted) {
      const updates: RunRecord[] = [];
      const off = jobs.watch(first.id, (r) => {
        updates.push(r);
        wake?.();
      });
      if (!off) {
        await sleep(WATCH_POLL_MS, undefined, { signal }).catch(() => undefined);
        const now = await jobs.getRun(first.id);
        if (!now) return;
        await emit(now);
        continue;
      }
      try {
        const now = await jobs.getRun(first.id);
        if (now) await emit(now);
        while (!isTerminal(last.status) && !signal.aborted) {
          if (updates.length === 0) await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          for (const r of updates.splice(0)) await emit(r);
        }
      } finally {
        off();
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

const name = (n: string): string => {
  if (!n) throw invalidFields([{ field: 'name', description: 'required' }]);
  return n;
};

/**
 * The tenant a caller's token is bound to, if any. Such an admin token is held to its tenant: it may
 * submit export jobs (their parameters carry its tenant, so they read only its rows, and its
 * budgets apply) and follow or cancel its own jobs. Everything else here acts on every tenant
 * (scheduled jobs, listings, other kinds) and is refused.
 */
const boundTenant = (ctx: CallContext): string | undefined => ctx.principal?.tenant;

function refuseTenant(ctx: CallContext, what: string): void {
  const tenant = boundTenant(ctx);
  if (tenant !== undefined) throw new AgentError('permission_denied', `token "${ctx.principal?.name ?? ''}" is bound to tenant "${tenant}": ${what} acts on every tenant; use a token without a tenant`);
}

/** SubmitJob's parameters for a tenant-bound token: an export of its own tenant's rows, or PERMISSION_DENIED. */
function tenantParams(ctx: CallContext, kind: string, params: Record<string, unknown>): Record<string, unknown> {
  const tenant = boundTenant(ctx);
  if (tenant === undefined) return params;
  if (kind !== 'export') refuseTenant(ctx, `job kind ${JSON.stringify(kind)}`);
  if (params.tenant !== undefined && params.tenant !== tenant) throw new AgentError('permission_denied', `job.params.tenant: token "${ctx.principal?.name ?? ''}" is bound to tenant "${tenant}"`);
  return { ...params, tenant };
}

/** A run as a caller may see it: a tenant-bound token sees only runs made for its tenant (others are NOT_FOUND). */
async function visibleRun(jobs: Jobs, id: string, ctx: CallContext): Promise<RunRecord> {
  const r = await jobs.getRun(id);
  const tenant = boundTenant(ctx);
  if (!r || (tenant !== undefined && (r.params as { tenant?: unknown }).tenant !== tenant)) throw new AgentError('not_found', `id: no job ${JSON.stringify(id)}`);
  return r;
}

/** Adds `heimdall.v1.JobService` (scope `admin`; a tenant-bound token only submits and follows exports of its tenant). */
export function addJobService(services: ServiceRegistrar, jobs: Jobs): void {
  /** A call on scheduled jobs, which belong to every tenant. */
  const scheduled = async <T>(ctx: CallContext, fn: () => Promise<T> | T): Promise<T> => {
    refuseTenant(ctx, 'a scheduled job');
    return fn();
  };
  services.addService(
    JobService,
    {
      createScheduledJob: (req, ctx) => scheduled(ctx, async () => ({ job: toScheduled(await jobs.create(validate(jobSpecSchema, specInput(req.job), 'job'))) })),
      updateScheduledJob: (req, ctx) => scheduled(ctx, async () => ({ job: toScheduled(await jobs.update(validate(jobSpecSchema, specInput(req.job), 'job'))) })),
      getScheduledJob: (req, ctx) => scheduled(ctx, () => ({ job: toScheduled(jobs.get(name(req.name))) })),
      listScheduledJobs: (_req, ctx) => scheduled(ctx, () => ({ jobs: jobs.list().map(toScheduled) })),
      pauseScheduledJob: (req, ctx) => scheduled(ctx, async () => ({ job: toScheduled(await jobs.setPaused(name(req.name), true)) })),
      resumeScheduledJob: (req, ctx) => scheduled(ctx, async () => ({ job: toScheduled(await jobs.setPaused(name(req.name), false)) })),
      deleteScheduledJob: (req, ctx) =>
        scheduled(ctx, async () => {
          await jobs.remove(name(req.name));
          return {};
        }),
      triggerScheduledJob: (req, ctx) => scheduled(ctx, async () => ({ job: toJob(await jobs.trigger(name(req.name))) })),
      submitJob: async (req, ctx) => {
        const params = tenantParams(ctx, req.kind, req.params ?? {});
        const task = validate(taskSchema, { kind: req.kind, params, ...(req.timeout ? { timeout: durationMs(req.timeout) } : {}), retry: retryInput(req.retry) }, 'job');
        return { job: toJob(await jobs.submit(task, { tenant: boundTenant(ctx) })) };
      },
      getJob: async (req, ctx) => ({ job: toJob(await visibleRun(jobs, req.id, ctx)) }),
      listJobs: async (req, ctx) => {
        refuseTenant(ctx, 'listing jobs');
        const p = await page(jobs, { kind: req.kind || undefined, status: STATUS_NAME.get(req.status) }, req);
        return { jobs: p.runs, nextPageToken: p.next };
      },
      cancelJob: async (req, ctx) => {
        if (boundTenant(ctx) !== undefined) await visibleRun(jobs, req.id, ctx);
        return { job: toJob(await jobs.cancel(req.id)) };
      },
      watchJob: async (req, send, ctx) => {
        const first = await visibleRun(jobs, req.id, ctx);
        await send({ job: toJob(first) });
        await follow(jobs, first, (r) => send({ job: toJob(r) }), ctx.signal);
      },
      listRuns: async (req, ctx) => {
        refuseTenant(ctx, 'listing runs');
        const p = await page(jobs, { jobName: req.jobName || undefined, status: STATUS_NAME.get(req.status), trigger: TRIGGER_NAME.get(req.trigger) }, req);
        return { runs: p.runs, nextPageToken: p.next };
      },
    },
    'admin:tenant',
  );
}
