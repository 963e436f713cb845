import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../telemetry/logger.js';
import { backoffMs, sleep } from '../../time/backoff.js';
import type { Plan } from './checkpoint.js';
import type { DeadLetter, RefusedRows } from './dead-letter.js';
import type { TableRows } from './formats.js';
import { isNoSpace } from './queue-files.js';
import type { QueueStatus } from './queue-status.js';
import type { RefusalLimit, Writer } from './writer.js';

/** A queued record, read and decoded: its sequence number and its rows per table. */
export interface QueuedRecord {
  seq: bigint;
  parts: TableRows[];
}

/** Options for createQueueDelivery. */
export interface QueueDeliveryOptions {
  writer: Writer;
  deadLetter: DeadLetter;
  /**
   * How long storage may refuse a batch while it answers (not unreachable, not a full disk) before
   * the batch is split to find the records it refuses; also how long a dead-letter write is retried.
   */
  refusedTimeoutMs: number;
  /** Backoff between retries of a dead-letter write. */
  retry: { initialMs: number; maxMs: number };
  /** Whether storage takes writes now (for the status while a batch waits). */
  storageReady: () => boolean;
  /** Records waiting (for the status). */
  depth: () => number;
  status: QueueStatus;
  metrics: Registry;
  logger: Logger;
}

/** Stores planned batches: table by table, splitting what storage keeps refusing, keeping what it refuses for good. */
export interface QueueDelivery {
  /**
   * Stores the records of a plan, each table with the token (queue id, from, to, table). When storage
   * refuses a table's rows for good (an error retrying cannot fix, or refusals for refusedTimeoutMs
   * while it answers), they are split in halves, each stored with its own token derived from the
   * plan's, down to single records; what is still refused goes to the dead-letter folder. The same
   * plan splits the same way again after a crash, so a replay carries the same tokens. Resolves true
   * when done, false when `signal` stopped it (the plan stays, to be replayed).
   */
  deliver(id: string, plan: Plan, records: readonly QueuedRecord[], signal: AbortSignal): Promise<boolean>;
}

/** The whole batch: refused at least this many times, over refusedTimeoutMs. */
const WHOLE_ATTEMPTS = 5;
/** A part of a split batch: refused this many times (storage already answered for the whole). */
const SPLIT_LIMIT: RefusalLimit = { attempts: 3, afterMs: 0 };
/** How often the status looks at storage while a batch waits for it. */
const STORAGE_CHECK_MS = 1_000;

/** Keeps refused rows in the dead-letter folder, retrying a failed write for refusedTimeoutMs, then drops them. False when stopped. */
async function keep(options: QueueDeliveryOptions, rows: RefusedRows, signal: AbortSignal): Promise<boolean> {
  const { status } = options;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await options.deadLetter.refused(rows);
      status.set('consumer', undefined);
      return true;
    } catch (err) {
      if (signal.aborted) return false;
      if (Date.now() - started >= options.refusedTimeoutMs) {
        options.deadLetter.dropRefused(rows, err);
        status.set('consumer', undefined);
        return true;
      }
      const delay = backoffMs(attempt, options.retry.initialMs, options.retry.maxMs);
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      status.set('consumer', `${isNoSpace(err) ? 'waiting for disk space: ' : ''}cannot write the dead-letter file: ${code}; retrying for ${Math.round(options.refusedTimeoutMs / 1_000)} s, then dropping the refused rows`);
      await sleep(delay, signal);
    }
  }
}

/** Creates the delivery of a queue's planned batches. */
export function createQueueDelivery(options: QueueDeliveryOptions): QueueDelivery {
  const { writer, status, logger } = options;
  const splits = new Counter({ name: 'heimdall_exporter_queue_split_batches_total', help: 'Queued batches split in halves because ClickHouse kept refusing them, to find the records it refuses.', registers: [options.metrics] });
  const wholeLimit: RefusalLimit = { attempts: WHOLE_ATTEMPTS, afterMs: options.refusedTimeoutMs };

  /** writer.write with the status saying so while storage is unavailable. */
  const write = async (table: string, records: readonly QueuedRecord[], token: string, limit: RefusalLimit) => {
    const parts = records.flatMap((r) => r.parts);
    const check = (): void => status.set('storage', options.storageReady() ? undefined : `storage unavailable, ${options.depth()} records waiting`);
    check();
    const timer = setInterval(check, STORAGE_CHECK_MS).unref();
    try {
      return await writer.write(
        table,
        Buffer.concat(parts.map((p) => p.data)),
        parts.reduce((n, p) => n + p.rows, 0),
        token,
        limit,
      );
    } finally {
      clearInterval(timer);
      status.set('storage', undefined);
    }
  };

  /**
   * Stores `records` of one table with `token` (the plan's token `base`, or a part's: `base:<from>-<to>`);
   * splits what storage refuses. False when stopped.
   */
  const store = async (table: string, records: readonly QueuedRecord[], base: string, token: string, limit: RefusalLimit, signal: AbortSignal): Promise<boolean> => {
    if (signal.aborted) return false;
    const result = await write(table, records, token, limit);
    if (result.status === 'ok') return true;
    if (signal.aborted) return false;
    const first = records[0];
    const last = records.at(-1);
    if (!first || !last) return true;
    if (records.length === 1) return keep(options, { table, range: { from: first.seq, to: last.seq }, parts: first.parts, error: result.error }, signal);
    splits.inc();
    logger.warn({ err: result.error, table, from: String(first.seq), to: String(last.seq), records: records.length }, 'durable queue: ClickHouse keeps refusing a batch; splitting it in halves to find the records it refuses');
    const mid = Math.ceil(records.length / 2);
    for (const half of [records.slice(0, mid), records.slice(mid)]) {
      if (!(await store(table, half, base, `${base}:${String(half[0]?.seq)}-${String(half.at(-1)?.seq)}`, SPLIT_LIMIT, signal))) return false;
    }
    return true;
  };

  return {
    async deliver(id, plan, records, signal) {
      const tables = [...new Set(records.flatMap((r) => r.parts.map((p) => p.table)))];
      for (const table of tables) {
        const mine = records.map((r) => ({ seq: r.seq, parts: r.parts.filter((p) => p.table === table) })).filter((r) => r.parts.length > 0);
        const base = `${id}:${plan.from}-${plan.to}:${table}`;
        if (!(await store(table, mine, base, base, wholeLimit, signal))) return false;
      }
      return true;
    },
  };
}
