import type { Registry } from 'prom-client';
import type { HealthRegistry } from '../../health/registry.js';
import type { Logger } from '../../telemetry/logger.js';
import { createCheckpointStore, numberingFloor, resumeCheckpoint } from './checkpoint.js';
import { createDeadLetter } from './dead-letter.js';
import type { TableRows } from './formats.js';
import { createQueueConsumer } from './queue-consumer.js';
import { createQueueDelivery } from './queue-delivery.js';
import { createQueueAppends } from './queue-appends.js';
import { nodeQueueFiles, type QueueFiles } from './queue-files.js';
import { registerQueueMetrics } from './queue-metrics.js';
import { createQueueStatus } from './queue-status.js';
import { createSegmentLog } from './segment-log.js';
import type { Writer } from './writer.js';

/** Options for createDurableQueue. */
export interface DurableQueueOptions {
  /** Directory of the log; created when missing. */
  path: string;
  /** Bytes of segments kept at most; appends past it are refused (retryable). */
  maxBytes: number;
  /** Bytes per segment file before a new one is started. */
  segmentBytes: number;
  /** Inserts batches; in queued mode it retries until it succeeds, shuts down, or meets an error retrying cannot fix. */
  writer: Writer;
  /** Whether storage takes writes now; while it does not, the queue's health says records are waiting for it. */
  storageReady: () => boolean;
  /** Rows per insert. */
  maxRows: number;
  /** Longest a record waits before a smaller batch is written. */
  maxDelayMs: number;
  /**
   * How long storage may refuse a batch while it answers (not unreachable, not a full disk) before
   * the batch is split to find the records it refuses (ingest.queue.poison_timeout).
   */
  refusedTimeoutMs: number;
  /** Bytes the dead-letter folder may hold; past it the oldest files are removed (ingest.queue.dead_letter_max_size). */
  deadLetterMaxBytes: number;
  /** Backoff between retries of a consumer step that failed on the disk (first, longest). */
  retry: { initialMs: number; maxMs: number };
  /** The agent's logger; the queue logs as component `queue`. */
  logger: Logger;
  /** Registry for the queue metrics. */
  metrics: Registry;
  /** Where the queue reports its state, as component `queue` (gating the strict readiness: `failed` while stalled on its disk). */
  health: HealthRegistry;
  /** The file system calls the queue makes (default node:fs; tests inject failures). */
  files?: QueueFiles;
}

/** An on-disk queue (write-ahead log) between acknowledgement and ClickHouse. */
export interface DurableQueue {
  /**
   * Opens the log (reading only segment headers and the last segment, whose write torn by a crash is
   * cut off), creates the checkpoint file when it is missing (so every later commit is written in
   * place), then starts writing queued data to storage. Needs no free disk space; damage and read
   * errors in the queue's files are left to the consumer, never a reason to fail.
   */
  start(): Promise<void>;
  /**
   * Appends rows; resolves once they are fsynced. Throws RetryableError when the queue is full or the
   * write did not complete (nothing of it is kept or acknowledged).
   */
  append(parts: readonly TableRows[]): Promise<void>;
  /** Records appended and not yet stored. */
  readonly depth: number;
  /** Bytes the queue holds on disk (of options.maxBytes). */
  readonly bytes: number;
  /** Why the queue cannot append or consume on its own (the disk failing), or undefined. */
  readonly stalled: string | undefined;
  /** Stops appends, lets the batch in progress finish (or stay queued), closes files. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Creates the durable queue: a segment log (append, recover, read, release) and its consumer (plan,
 * store, commit, dead-letter), with the checkpoint between them. Exactly once: see createQueueConsumer.
 */
export function createDurableQueue(options: DurableQueueOptions): DurableQueue {
  const dir = options.path;
  const files = options.files ?? nodeQueueFiles;
  const logger = options.logger.child({ component: 'queue' });
  const reporter = options.health.register('queue', { gate: 'strict' });
  const status = createQueueStatus(reporter);
  const checkpoints = createCheckpointStore({ dir, files, logger });
  const log = createSegmentLog({
    dir,
    files,
    segmentBytes: options.segmentBytes,
    logger,
    onDurable: () => {
      status.set('append', undefined);
      consumer.wake();
    },
  });
  const depth = (): number => Math.max(0, Number(log.durableSeq - consumer.committed));
  const deadLetter = createDeadLetter({ dir, files, maxBytes: options.deadLetterMaxBytes, logger, metrics: options.metrics });
  const delivery = createQueueDelivery({
    writer: options.writer,
    deadLetter,
    refusedTimeoutMs: options.refusedTimeoutMs,
    retry: options.retry,
    storageReady: options.storageReady,
    depth,
    status,
    metrics: options.metrics,
    logger,
  });
  const consumer = createQueueConsumer({ log, checkpoints, deadLetter, delivery, maxRows: options.maxRows, maxDelayMs: options.maxDelayMs, retry: options.retry, status, logger });
  const { refused } = registerQueueMetrics({ metrics: options.metrics, maxBytes: options.maxBytes, depth, bytes: () => log.bytes });
  const appends = createQueueAppends({ log, maxBytes: options.maxBytes, refused, status });

  return {
    get depth() {
      return depth();
    },
    get bytes() {
      return log.bytes;
    },
    get stalled() {
      return status.stalled;
    },
    async start() {
      await files.mkdir(dir);
      const loaded = await checkpoints.load();
      const salt = await log.recover(numberingFloor(loaded), loaded?.salt);
      const checkpoint = resumeCheckpoint(loaded, salt, log.start.first - 1n);
      const { committed, plan } = checkpoint;
      await deadLetter.start();
      // Created now, before any append can fill the disk: from here on, commits are in-place writes.
      if (!checkpoints.created) await checkpoints.save(checkpoint).catch((err: unknown) => logger.warn({ err }, 'durable queue: cannot create the checkpoint yet'));
      logger.info({ path: dir, backlog: Number(log.durableSeq - committed), bytes: log.bytes, replayingPlan: plan ? { from: plan.from.toString(), to: plan.to.toString() } : null }, 'durable queue opened');
      status.start();
      consumer.start(checkpoint);
    },
    append: (parts) => appends.append(parts),
    async shutdown() {
      if (!appends.close()) return;
      await log.close();
      // The consumer stops first: an insert the writer gives up on at shutdown is not a refusal.
      const consumerStopped = consumer.shutdown();
      options.writer.shutdown();
      await consumerStopped;
      await checkpoints.close();
      reporter.set('stopping');
      logger.info({ backlog: depth() }, 'durable queue closed');
    },
  };
}
