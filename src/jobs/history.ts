import type { Storage } from '../storage/storage.js';
import { JOB_RUNS } from '../storage/tables.js';
import type { Logger } from '../telemetry/logger.js';
import { nanosToDateTime64 } from '../time/datetime64.js';
import { createHistoryBuffer } from './history-buffer.js';

export type RunStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type RunTrigger = 'schedule' | 'manual' | 'submit' | 'misfire' | 'retry';

/** A status a run never leaves. */
export function isTerminal(s: RunStatus): boolean {
  return s === 'succeeded' || s === 'failed' || s === 'cancelled';
}

/** One run of a task (times in ms since the epoch, 0 when not yet). */
export interface RunRecord {
  id: string;
  /** The scheduled job's name; empty for an on-demand job. */
  jobName: string;
  kind: string;
  params: Record<string, unknown>;
  timeoutMs: number;
  attempts: number;
  backoffMs: number;
  trigger: RunTrigger;
  status: RunStatus;
  attempt: number;
  progress: number;
  message: string;
  error: string;
  result: Record<string, unknown>;
  correlationId: string;
  instance: string;
  fence: number;
  scheduledTime: number;
  createdAt: number;
  startedAt: number;
  endedAt: number;
  /** The stored row's version (when read from storage): tells one saved state of a run from the next. */
  version?: number;
}

/** Which runs a listing returns (times in ms; created in [start, end)). */
export interface RunFilter {
  jobName?: string | undefined;
  kind?: string | undefined;
  status?: RunStatus | undefined;
  trigger?: RunTrigger | undefined;
  start: number;
  end: number;
  /** Only runs with an id below this one (the previous page's last). */
  beforeId?: string | undefined;
  limit: number;
}

/** Run history in storage, written behind: a save never waits for or fails on storage. */
export interface RunHistory {
  /** Records a run's current state; the newest state of each run is kept until stored. */
  save(run: RunRecord): void;
  /** Stores every state saved before the call; throws when storage cannot take it (it stays waiting). */
  flush(): Promise<void>;
  /** When a write last failed (ms; 0 when none has). */
  readonly failedAt: number;
  /** A run by id, from what is waiting or from storage. */
  get(id: string): Promise<RunRecord | undefined>;
  /** Runs, newest first. */
  list(filter: RunFilter): Promise<RunRecord[]>;
  /**
   * The newest scheduled tick recorded for each job (ms) before `beforeMs`: the ticks of runs that
   * started after it (this agent's own, once it is up) do not hide a tick missed while it was down.
   */
  lastTicks(beforeMs: number): Promise<Map<string, number>>;
  /**
   * Runs created at or after `since` (ms) that never ended: those of `instance` (the agent stopped
   * under them), and those of other instances not saved since `staleBefore` (ms; their agent went
   * away: live runs are saved at every heartbeat). Oldest first.
   */
  unfinished(instance: string, staleBefore: number, since: number): Promise<RunRecord[]>;
  start(): void;
  /** Stores what is waiting (best effort: logged when storage cannot). Safe to call twice. */
  shutdown(): Promise<void>;
}

/** Times are read as milliseconds under their own names (an alias must not shadow the column in WHERE). */
const COLUMNS = `Id, JobName, Kind, Params, TimeoutMs, Attempts, BackoffMs, Trigger, Status, Attempt, Progress, Message, Error, Result, CorrelationId, Instance, Fence, toString(Version) AS VersionText,
  toUnixTimestamp64Milli(ScheduledTime) AS ScheduledTimeMs, toUnixTimestamp64Milli(CreatedAt) AS CreatedAtMs, toUnixTimestamp64Milli(StartedAt) AS StartedAtMs, toUnixTimestamp64Milli(EndedAt) AS EndedAtMs`;

type Row = Record<string, string | number>;

const dt = (ms: number): string => nanosToDateTime64(BigInt(Math.max(0, Math.round(ms))) * 1_000_000n);

function toRow(r: RunRecord, version: number): Row {
  return {
    Id: r.id,
    JobName: r.jobName,
    Kind: r.kind,
    Params: JSON.stringify(r.params),
    TimeoutMs: r.timeoutMs,
    Attempts: r.attempts,
    BackoffMs: r.backoffMs,
    Trigger: r.trigger,
    Status: r.status,
    Attempt: r.attempt,
    Progress: r.progress,
    Message: r.message,
    Error: r.error,
    Result: JSON.stringify(r.result),
    CorrelationId: r.correlationId,
    Instance: r.instance,
    Fence: r.fence,
    ScheduledTime: dt(r.scheduledTime),
    CreatedAt: dt(r.createdAt),
    StartedAt: dt(r.startedAt),
    EndedAt: dt(r.endedAt),
    Version: version,
  };
}

const json = (text: unknown): Record<string, unknown> => {
  try {
    const v = JSON.parse(String(text)) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

function fromRow(r: Row): RunRecord {
  const n = (k: string): number => Number(r[k] ?? 0);
  const s = (k: string): string => String(r[k] ?? '');
  return {
    id: s('Id'),
    jobName: s('JobName'),
    kind: s('Kind'),
    params: json(r.Params),
    timeoutMs: n('TimeoutMs'),
    attempts: n('Attempts'),
    backoffMs: n('BackoffMs'),
    trigger: s('Trigger') as RunTrigger,
    status: s('Status') as RunStatus,
    attempt: n('Attempt'),
    progress: n('Progress'),
    message: s('Message'),
    error: s('Error'),
    result: json(r.Result),
    correlationId: s('CorrelationId'),
    instance: s('Instance'),
    fence: n('Fence'),
    scheduledTime: n('ScheduledTimeMs'),
    createdAt: n('CreatedAtMs'),
    startedAt: n('StartedAtMs'),
    endedAt: n('EndedAtMs'),
    version: n('VersionText'),
  };
}

/** The query of one page of runs, newest first. */
function listQuery(f: RunFilter): { sql: string; params: Record<string, string | number> } {
  const where = ['CreatedAt >= fromUnixTimestamp64Milli({start:Int64})', 'CreatedAt < fromUnixTimestamp64Milli({end:Int64})'];
  const params: Record<string, string | number> = { start: f.start, end: f.end, limit: f.limit };
  const add = (column: string, name: string, value: string | undefined): void => {
    if (value === undefined || value === '') return;
    where.push(`${column} = {${name}:String}`);
    params[name] = value;
  };
  add('JobName', 'job', f.jobName);
  add('Kind', 'kind', f.kind);
  add('Status', 'status', f.status);
  add('Trigger', 'trigger', f.trigger);
  if (f.beforeId) {
    where.push('Id < {before:String}');
    params.before = f.beforeId;
  }
  return { sql: `SELECT ${COLUMNS} FROM ${JOB_RUNS.name} FINAL WHERE ${where.join(' AND ')} ORDER BY Id DESC LIMIT {limit:UInt32}`, params };
}

/** Creates the run history over storage: states written behind through a buffer, reads from storage. */
export function createRunHistory(options: { storage: Storage; logger: Logger }): RunHistory {
  const { storage } = options;
  let version = 0;
  /** Versions grow with time and within one millisecond. */
  const nextVersion = (): number => (version = Math.max(version + 1, Date.now() * 1000));
  const buffer = createHistoryBuffer<RunRecord>({
    insert: (runs) => storage.transport.insert(JOB_RUNS.name, runs.map((r) => toRow(r, nextVersion()))),
    ready: () => storage.ready,
    logger: options.logger,
  });
  const read = async (sql: string, params: Record<string, string | number>): Promise<RunRecord[]> => (await storage.transport.query<Row>(sql, params)).map(fromRow);

  return {
    save: (run) => buffer.save(run),
    flush: () => buffer.flush(),
    get failedAt() {
      return buffer.failedAt;
    },
    async get(id) {
      const w = buffer.waiting(id);
      if (w) return w;
      const [run] = await read(`SELECT ${COLUMNS} FROM ${JOB_RUNS.name} FINAL WHERE Id = {id:String}`, { id });
      return run;
    },
    async list(f) {
      await buffer.flush();
      const { sql, params } = listQuery(f);
      return read(sql, params);
    },
    async lastTicks(beforeMs) {
      await buffer.flush();
      const rows = await storage.transport.query<Row>(
        `SELECT JobName, toUnixTimestamp64Milli(max(ScheduledTime)) AS tick FROM ${JOB_RUNS.name} FINAL WHERE Trigger IN ('schedule', 'misfire') AND ScheduledTime < fromUnixTimestamp64Milli({before:Int64}) GROUP BY JobName`,
        { before: beforeMs },
      );
      return new Map(rows.map((r) => [String(r.JobName), Number(r.tick)]));
    },
    async unfinished(instance, staleBefore, since) {
      await buffer.flush();
      return read(
        `SELECT ${COLUMNS} FROM ${JOB_RUNS.name} FINAL WHERE CreatedAt >= fromUnixTimestamp64Milli({since:Int64}) AND Status IN ('pending', 'running') AND (Instance = {instance:String} OR Version < {stale:UInt64}) ORDER BY Id`,
        { instance, stale: staleBefore * 1000, since },
      );
    },
    start: () => buffer.start(),
    shutdown: () => buffer.shutdown(),
  };
}
