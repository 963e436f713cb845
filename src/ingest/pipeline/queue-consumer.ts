import type { Logger } from '../../telemetry/logger.js';
import { backoffMs, sleep } from './backoff.js';
import type { Checkpoint, CheckpointStore, Plan } from './checkpoint.js';
import type { DeadLetter } from './dead-letter.js';
import type { QueueDelivery, QueuedRecord } from './queue-delivery.js';
import { isNoSpace } from './queue-files.js';
import type { QueueStatus } from './queue-status.js';
import type { SegmentLog } from './segment-log.js';
import type { Position } from './segment-reader.js';
import type { TableRows } from './formats.js';
import { decodeParts, segmentName } from './wal.js';

/** Options for createQueueConsumer. */
export interface QueueConsumerOptions {
  log: SegmentLog;
  checkpoints: CheckpointStore;
  deadLetter: DeadLetter;
  delivery: QueueDelivery;
  /** Rows per insert. */
  maxRows: number;
  /** Longest a record waits before a smaller batch is written. */
  maxDelayMs: number;
  /** Backoff between retries of a step that failed on the disk. */
  retry: { initialMs: number; maxMs: number };
  status: QueueStatus;
  logger: Logger;
}

/**
 * Moves queued records to storage, exactly once: before inserting records [from..to] it records that
 * plan in the checkpoint; every insert carries a token derived from (queue id, from, to, table);
 * after a crash the plan is replayed first, and ClickHouse drops the inserts that had already landed.
 * A step that fails (disk full, I/O error) is retried with backoff from where it started, so the
 * consumer never stops for good; damaged records go to the dead-letter folder and reading goes on.
 * While the checkpoint file cannot be created (a disk filled before it existed), it drains the
 * oldest, sealed segments without it: batches cut the same way every time (up to maxRows rows,
 * never across a segment), so a replay after a crash carries the same tokens; a removed segment
 * records that its records were stored; the checkpoint is created once removing one freed space.
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

/** The parts of a record's payload, or undefined when it is malformed (its CRCs matched, its framing does not). */
const partsOf = (payload: Buffer): TableRows[] | undefined => {
  try {
    return decodeParts(payload);
  } catch {
    return undefined;
  }
};

/** Creates the consumer of a queue's log. */
export function createQueueConsumer(options: QueueConsumerOptions): QueueConsumer {
  const { log, checkpoints, logger, status } = options;
  let cp: Checkpoint = { id: '', salt: Buffer.alloc(0), committed: 0n, plan: undefined };
  let pos: Position = log.start;
  const stop = new AbortController();
  let wakeUp: AbortController | undefined;
  let running: Promise<void> | undefined;
  /** Why the checkpoint file cannot be created, as last logged. */
  let createFailure: string | undefined;

  /** Waits `ms`, or less when stopped, or woken (`wakeable`). */
  const nap = async (ms: number, wakeable = false): Promise<void> => {
    const woken = new AbortController();
    if (wakeable) wakeUp = woken;
    await sleep(ms, AbortSignal.any([stop.signal, woken.signal]));
    if (wakeUp === woken) wakeUp = undefined;
  };

  /** Records a new checkpoint: durably, or only in memory while there is no checkpoint file (see QueueConsumer). */
  const save = async (next: Checkpoint, what: string): Promise<void> => {
    if (checkpoints.created) await attempt(`write the checkpoint (${what})`, () => checkpoints.save(next));
    cp = next;
  };

  /** Creates the checkpoint file when it is missing; says in the status while it cannot. */
  const create = async (): Promise<void> => {
    if (checkpoints.created) return;
    try {
      await checkpoints.save(cp);
      status.set('checkpoint', undefined);
      createFailure = undefined;
      logger.info('durable queue: created the checkpoint');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const reason = `${isNoSpace(err) ? 'waiting for disk space: ' : ''}cannot create the checkpoint: ${code}; draining the oldest segments without it`;
      if (createFailure !== reason) logger.warn({ err }, `durable queue: ${reason}`);
      createFailure = reason;
      status.set('checkpoint', reason);
    }
  };

  /**
   * Reads records after the read position: up to maxRows rows, or exactly up to `upTo` when
   * replaying a plan, or (`oneSegment`) up to maxRows rows of one sealed segment (`more`: it
   * stopped at the end of that segment, before another sealed one). Damaged and malformed records
   * go to the dead-letter folder. Advances the read position.
   */
  const readBatch = async (opts: { upTo?: bigint; oneSegment?: boolean } = {}): Promise<{ records: QueuedRecord[]; rows: number; more: boolean }> => {
    const records: QueuedRecord[] = [];
    let rows = 0;
    let segment: bigint | undefined;
    for (;;) {
      const { from, sealed, items } = await attempt('read the queue', () => log.read(pos));
      if (opts.oneSegment && (!sealed || (segment !== undefined && from.first !== segment))) return { records, rows, more: sealed && items.length > 0 };
      pos = from;
      segment ??= from.first;
      if (items.length === 0) return { records, rows, more: false };
      for (const item of items) {
        if (item.kind === 'damage') {
          await options.deadLetter.damaged(item.damage);
        } else if (item.record.seq > cp.committed) {
          if (opts.upTo !== undefined ? item.record.seq > opts.upTo : rows >= options.maxRows) return { records, rows, more: false };
          const { seq, payload, start, end } = item.record;
          const parts = partsOf(payload);
          if (parts) {
            records.push({ seq, parts });
            rows += parts.reduce((n, p) => n + p.rows, 0);
          } else {
            await options.deadLetter.damaged({ segment: segmentName(item.next.first), start, end, bytes: payload });
          }
        }
        pos = item.next;
      }
    }
  };

  const release = async (): Promise<void> => {
    try {
      // Space freed: an append that failed on a full disk may succeed now.
      if (await log.release(pos, cp.committed)) status.set('append', undefined);
    } catch (err) {
      logger.warn({ err }, 'durable queue: cannot remove stored segments yet; retrying after the next batch');
    }
  };

  /** Stores the planned batch (or keeps what storage refuses in the dead-letter folder), then commits it. */
  const deliver = async (records: readonly QueuedRecord[], p: Plan): Promise<void> => {
    // Shutting down: the plan stays in the checkpoint and is replayed first at the next start.
    if (!(await options.delivery.deliver(cp.id, p, records, stop.signal))) return;
    await save({ ...cp, committed: p.to, plan: undefined }, 'commit a stored batch');
    await release();
  };

  /** One batch: read, plan, store, commit. False when there was nothing to do. */
  const step = async (): Promise<boolean> => {
    await release();
    await create();
    if (cp.plan) {
      // Replay of the plan in the checkpoint: exactly its records (the damaged ones are in the dead-letter folder).
      const plan = cp.plan;
      await deliver((await readBatch({ upTo: plan.to })).records, plan);
      return true;
    }
    const start = pos;
    const horizon = log.durableSeq;
    const fixedCut = !checkpoints.created;
    let batch = await readBatch({ oneSegment: fixedCut });
    if (!fixedCut && batch.records.length > 0 && batch.rows < options.maxRows && !stop.signal.aborted) {
      // Let a small batch grow for up to maxDelay, then take what there is.
      await nap(options.maxDelayMs);
      pos = start;
      batch = await readBatch();
    }
    if (stop.signal.aborted) return false;
    const first = batch.records[0];
    const last = batch.records.at(-1);
    if (!first || !last) {
      // Without the checkpoint, one segment at a time: go on with the next one, if there is one.
      if (fixedCut) return batch.more;
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
    while (!stop.signal.aborted) {
      const start = pos;
      try {
        const worked = await step();
        if (failures > 0) logger.info({ attempts: failures }, 'durable queue: the consumer is moving again');
        failures = 0;
        status.set('consumer', undefined);
        if (!worked && !stop.signal.aborted) await nap(options.maxDelayMs, true);
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
        await nap(delay);
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
      wakeUp?.abort();
    },
    async shutdown() {
      stop.abort();
      await running;
    },
  };
}
