import type { Logger } from '../../telemetry/logger.js';
import { createWakeableSleep, type WakeableSleep } from '../../time/backoff.js';
import { createBatchReader, planBatch, type Batch, type BatchReader } from './batch-reader.js';
import type { Checkpoint, CheckpointStore, Plan } from './checkpoint.js';
import { createConsumerCheckpoint } from './consumer-checkpoint.js';
import { createConsumerRetry } from './consumer-retry.js';
import type { DeadLetter } from './dead-letter.js';
import type { QueueDelivery, QueuedRecord } from './queue-delivery.js';
import type { QueueStatus } from './queue-status.js';
import type { SegmentLog } from './segment-log.js';
import type { Position } from './segment-reader.js';

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

/** Removes the segments read past and stored; never throws (a failure is logged and retried after the next batch). */
async function releaseStored({ log, status, logger }: QueueConsumerOptions, passed: Position, committed: bigint): Promise<void> {
  try {
    // Space freed: an append that failed on a full disk may succeed now.
    if (await log.release(passed, committed)) status.set('append', undefined);
  } catch (err) {
    logger.warn({ err }, 'durable queue: cannot remove stored segments yet; retrying after the next batch');
  }
}

/**
 * Reads the next batch after `committed`. With a fixed cut (no checkpoint file yet): up to maxRows
 * rows of one segment, the same every time. Otherwise a batch smaller than maxRows may grow for
 * up to maxDelayMs (unless stopping), then it is read again from the same position.
 */
async function readBatch(reader: BatchReader, o: { committed: bigint; fixedCut: boolean; maxRows: number; maxDelayMs: number; sleep: WakeableSleep; stop: AbortSignal }): Promise<Batch> {
  const start = reader.position;
  const batch = await reader.read(o.committed, { oneSegment: o.fixedCut });
  if (o.fixedCut || batch.records.length === 0 || batch.rows >= o.maxRows || o.stop.aborted) return batch;
  // Let a small batch grow for up to maxDelay, then take what there is.
  await o.sleep.nap(o.maxDelayMs);
  reader.position = start;
  return reader.read(o.committed);
}

/**
 * Creates the consumer of a queue's log: a loop of steps (read, plan, store, commit) over a batch
 * reader (read position, dead-letter of damage), the checkpoint state (commit, plan) and the retry
 * state (backoff, status), each its own unit.
 */
export function createQueueConsumer(options: QueueConsumerOptions): QueueConsumer {
  const { log, checkpoints, logger, status } = options;
  const cp = createConsumerCheckpoint({ checkpoints, status, logger });
  const reader = createBatchReader({ log, deadLetter: options.deadLetter, maxRows: options.maxRows });
  const retry = createConsumerRetry({ retry: options.retry, status, logger });
  const stop = new AbortController();
  const sleep = createWakeableSleep(stop.signal);
  let running: Promise<void> | undefined;

  const release = (): Promise<void> => releaseStored(options, reader.position, cp.current.committed);

  /** Stores the planned batch (or keeps what storage refuses in the dead-letter folder), then commits it. */
  const deliver = async (records: readonly QueuedRecord[], p: Plan): Promise<void> => {
    // Shutting down: the plan stays in the checkpoint and is replayed first at the next start.
    if (!(await options.delivery.deliver(cp.current.id, p, records, stop.signal))) return;
    await cp.save({ ...cp.current, committed: p.to, plan: undefined }, 'commit a stored batch');
    await release();
  };

  /** One batch: read, plan, store, commit. False when there was nothing to do. */
  const step = async (): Promise<boolean> => {
    await release();
    await cp.create();
    const { plan } = cp.current;
    if (plan) {
      // Replay of the plan in the checkpoint: exactly its records (the damaged ones are in the dead-letter folder).
      await deliver((await reader.read(cp.current.committed, { upTo: plan.to })).records, plan);
      return true;
    }
    const horizon = log.durableSeq;
    const fixedCut = !checkpoints.created;
    const batch = await readBatch(reader, { committed: cp.current.committed, fixedCut, maxRows: options.maxRows, maxDelayMs: options.maxDelayMs, sleep, stop: stop.signal });
    if (stop.signal.aborted) return false;
    const next = planBatch(batch, { fixedCut, horizon, committed: cp.current.committed });
    if (next.kind === 'none') {
      if (next.skipTo !== undefined) await cp.save({ ...cp.current, committed: next.skipTo }, 'move past damaged records');
      return next.more;
    }
    await cp.save({ ...cp.current, plan: next.plan }, 'plan a batch');
    await deliver(batch.records, next.plan);
    return true;
  };

  const run = async (): Promise<void> => {
    while (!stop.signal.aborted) {
      const start = reader.position;
      try {
        const worked = await step();
        retry.succeeded();
        if (!worked && !stop.signal.aborted) await sleep.nap(options.maxDelayMs, true);
      } catch (err) {
        // Start the step again from where it started; nothing it did before failing is lost or repeated.
        reader.position = start;
        await sleep.nap(retry.failed(err));
      }
    }
  };

  return {
    get committed() {
      return cp.current.committed;
    },
    start(checkpoint) {
      cp.start(checkpoint);
      reader.position = log.start;
      running ??= run();
    },
    wake: () => sleep.wake(),
    async shutdown() {
      stop.abort();
      await running;
    },
  };
}
