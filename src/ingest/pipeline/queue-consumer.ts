import type { Logger } from '../../telemetry/logger.js';
import { backoffMs } from './backoff.js';
import type { Checkpoint, CheckpointStore, Plan } from './checkpoint.js';
import type { DeadLetter } from './dead-letter.js';
import type { QueueStatus } from './queue-status.js';
import { isNoSpace } from './queue-files.js';
import type { Position, SegmentLog } from './segment-log.js';
import { countRows, decodeParts, type WalRecord } from './wal.js';
import type { Writer } from './writer.js';

/** Options for createQueueConsumer. */
export interface QueueConsumerOptions {
  log: SegmentLog;
  checkpoints: CheckpointStore;
  deadLetter: DeadLetter;
  /** Inserts batches; retries until it succeeds, shuts down, or meets an error retrying cannot fix. */
  writer: Writer;
  /** Rows per insert. */
  maxRows: number;
  /** Longest a record waits before a smaller batch is written. */
  maxDelayMs: number;
  /** Backoff between retries of a step that failed on the disk. */
  retry: { initialMs: number; maxMs: number };
  /** Whether storage takes writes now (for the status while a batch waits). */
  storageReady: () => boolean;
  /** Records waiting (for the status). */
  depth: () => number;
  status: QueueStatus;
  logger: Logger;
}

/**
 * Moves queued records to storage, exactly once: before inserting records [from..to] it records that
 * plan in the checkpoint; every insert carries a token derived from (queue id, from, to, table);
 * after a crash the plan is replayed first, and ClickHouse drops the inserts that had already landed.
 * A step that fails (disk full, I/O error) is retried with backoff from where it started, so the
 * consumer never stops for good; damaged records go to the dead-letter folder and reading goes on.
 */
export interface QueueConsumer {
  /** Starts consuming from the start of the log, after the checkpoint loaded at start. */
  start(checkpoint: Checkpoint): void;
  /** Tells the consumer new records are durable. */
  wake(): void;
  /** Every record up to this sequence number is stored. */
  readonly committed: bigint;
  /** Stops: the batch in flight finishes or stays planned (replayed at the next start). Safe to call twice. */
  shutdown(): Promise<void>;
}

/** A batch ClickHouse refuses this many times for a reason retrying cannot fix goes to the dead-letter directory. */
const POISON_ATTEMPTS = 3;
/** How often the status looks at storage while a batch waits for it. */
const STORAGE_CHECK_MS = 1_000;

/** A consumer step that failed, with what it was doing. */
class StepError extends Error {
  override name = 'StepError';
  constructor(
    readonly what: string,
    override readonly cause: unknown,
  ) {
    super(`cannot ${what}: ${(cause as Error).message}`);
  }
}

const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (err) {
    throw new StepError(what, err);
  }
};

const duration = (ms: number): string => (ms < 1_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1_000)} s`);

/** Creates the consumer of a queue's log. */
export function createQueueConsumer(options: QueueConsumerOptions): QueueConsumer {
  const { log, logger, status } = options;
  let cp: Checkpoint = { id: '', committed: 0n, plan: undefined };
  let pos: Position = log.start;
  /** A planned batch storage refused for good, until it is in the dead-letter folder. */
  let poison: { plan: Plan; error: Error } | undefined;
  let stopped = false;
  const stop = new AbortController();
  let wakeUp: (() => void) | undefined;
  let running: Promise<void> | undefined;

  /** Waits `ms`, or less when woken (`wakeable`) or stopped. */
  const sleep = (ms: number, wakeable = false): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        stop.signal.removeEventListener('abort', done);
        if (wakeUp === done) wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      stop.signal.addEventListener('abort', done, { once: true });
      if (wakeable) wakeUp = done;
    });

  const save = async (next: Checkpoint, what: string): Promise<void> => {
    await attempt(`write the checkpoint (${what})`, () => options.checkpoints.save(next));
    cp = next;
  };

  /**
   * Reads records after the read position: up to maxRows rows, or exactly up to `upTo` when
   * replaying a plan. Keeps damaged bytes it meets in the dead-letter folder. Advances the position.
   */
  const readBatch = async (upTo?: bigint): Promise<{ records: WalRecord[]; rows: number }> => {
    const records: WalRecord[] = [];
    let rows = 0;
    for (;;) {
      const { from, items } = await attempt('read the queue', () => log.read(pos));
      pos = from;
      if (items.length === 0) return { records, rows };
      for (const item of items) {
        if (item.kind === 'damage') {
          await attempt('write the dead-letter file', () => options.deadLetter.damaged(item.damage));
        } else if (item.record.seq > cp.committed) {
          if (upTo !== undefined ? item.record.seq > upTo : rows >= options.maxRows) return { records, rows };
          records.push(item.record);
          rows += countRows(item.record.payload);
        }
        pos = item.next;
      }
    }
  };

  /** Inserts one planned batch, table by table, each with its deterministic token. */
  const store = async (records: readonly WalRecord[], p: Plan): Promise<Error | undefined> => {
    const byTable = new Map<string, { data: Buffer[]; rows: number }>();
    for (const r of records) {
      for (const part of decodeParts(r.payload)) {
        const t = byTable.get(part.table) ?? { data: [], rows: 0 };
        t.data.push(part.data);
        t.rows += part.rows;
        byTable.set(part.table, t);
      }
    }
    for (const [table, t] of byTable) {
      const result = await options.writer.write(table, Buffer.concat(t.data), t.rows, `${cp.id}:${p.from}-${p.to}:${table}`);
      if (result.status !== 'ok') return result.error;
    }
    return undefined;
  };

  /** store() with the status saying so while storage is unavailable. */
  const storeWatched = async (records: readonly WalRecord[], p: Plan): Promise<Error | undefined> => {
    const check = (): void => status.set('storage', options.storageReady() ? undefined : `storage unavailable, ${options.depth()} records waiting`);
    check();
    const timer = setInterval(check, STORAGE_CHECK_MS).unref();
    try {
      return await store(records, p);
    } finally {
      clearInterval(timer);
      status.set('storage', undefined);
    }
  };

  const release = async (): Promise<void> => {
    try {
      await log.release(pos, cp.committed);
    } catch (err) {
      logger.warn({ err }, 'durable queue: cannot remove stored segments yet; retrying after the next batch');
    }
  };

  /** Stores the planned batch (or keeps it in the dead-letter folder), then commits it. */
  const deliver = async (records: readonly WalRecord[], p: Plan): Promise<void> => {
    if (records.length > 0 && poison?.plan !== p) {
      let error: Error | undefined;
      for (let n = 1; n <= POISON_ATTEMPTS && !stopped; n++) {
        error = await storeWatched(records, p);
        if (!error) break;
        if (!stopped && n < POISON_ATTEMPTS) await sleep(1_000 * n);
      }
      // Shutting down: the plan stays in the checkpoint and is replayed first at the next start.
      if (stopped) return;
      if (error) poison = { plan: p, error };
    }
    if (poison?.plan === p) {
      const { error } = poison;
      await attempt('write the dead-letter file', () => options.deadLetter.batch(records, p, error));
    }
    await save({ ...cp, committed: p.to, plan: undefined }, 'commit a stored batch');
    poison = undefined;
    await release();
  };

  /** One batch: read, plan, store, commit. False when there was nothing to do. */
  const step = async (): Promise<boolean> => {
    await release();
    if (cp.plan) {
      // Replay of the plan in the checkpoint: exactly its records (the damaged ones are in the dead-letter folder).
      const plan = cp.plan;
      await deliver((await readBatch(plan.to)).records, plan);
      return true;
    }
    const start = pos;
    const horizon = log.durableSeq;
    let batch = await readBatch();
    if (batch.records.length > 0 && batch.rows < options.maxRows && !stopped) {
      // Let a small batch grow for up to maxDelay, then take what there is.
      await sleep(options.maxDelayMs);
      pos = start;
      batch = await readBatch();
    }
    if (stopped) return false;
    const first = batch.records[0];
    const last = batch.records[batch.records.length - 1];
    if (!first || !last) {
      // Every record up to the horizon was read: past the committed mark there were only damaged ones.
      if (horizon > cp.committed) await save({ ...cp, committed: horizon }, 'move past damaged records');
      return false;
    }
    const plan = { from: first.seq, to: last.seq };
    await save({ ...cp, plan }, 'plan a batch');
    await deliver(batch.records, plan);
    return true;
  };

  const run = async (): Promise<void> => {
    let failures = 0;
    while (!stopped) {
      const start = pos;
      try {
        const worked = await step();
        if (failures > 0) logger.info({ attempts: failures }, 'durable queue: the consumer is moving again');
        failures = 0;
        status.set('consumer', undefined);
        if (!worked && !stopped) await sleep(options.maxDelayMs, true);
      } catch (err) {
        // Start the step again from where it started; nothing it did before failing is lost or repeated.
        pos = start;
        failures += 1;
        const delay = backoffMs(failures, options.retry.initialMs, options.retry.maxMs);
        const cause = err instanceof StepError ? err.cause : err;
        const what = err instanceof StepError ? err.what : 'consume';
        const code = (cause as NodeJS.ErrnoException).code;
        const reason = `${isNoSpace(cause) ? 'waiting for disk space: ' : ''}cannot ${what}: ${code ?? (cause as Error).message}; retrying in ${duration(delay)}`;
        status.set('consumer', reason);
        if (failures === 1 || failures % 10 === 0) logger.error({ err: cause, attempt: failures, retryInMs: delay }, `durable queue: ${reason}`);
        await sleep(delay);
      }
    }
  };

  return {
    get committed() {
      return cp.committed;
    },
    start(checkpoint) {
      cp = checkpoint;
      pos = log.start;
      running ??= run();
    },
    wake() {
      wakeUp?.();
    },
    async shutdown() {
      stopped = true;
      stop.abort();
      await running;
    },
  };
}
