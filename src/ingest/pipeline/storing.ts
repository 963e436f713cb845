import { Counter, type Registry } from 'prom-client';
import type { Config } from '../../config/schema.js';
import type { HealthRegistry } from '../../health/registry.js';
import type { Storage } from '../../storage/storage.js';
import type { Logger } from '../../telemetry/logger.js';
import { createBatcher } from './batcher.js';
import { RequestTooLarge } from './errors.js';
import type { TableRows } from './formats.js';
import type { MemoryLimiter } from './limiter.js';
import { createDurableQueue, type DurableQueue } from './queue.js';
import { recordBytes } from './wal.js';
import { createWriter } from './writer.js';

/** Inserts of one table at a time with embedded storage (two: one may run while the next batch is built and sent). */
export const EMBEDDED_INSERTS_IN_FLIGHT = 2;
/** A batch of max_rows / 10 rows or more (1,000 by default) is written once no rows came for max_delay / 20 (10 ms by default). */
const [QUIET_ROWS_DIVISOR, QUIET_DELAY_DIVISOR] = [10, 20];

/** Options for createStoring. */
export interface StoringOptions {
  /** The `ingest` section of the configuration (ack, batch, queue, retry). */
  config: Config['ingest'];
  storage: Storage;
  /** Counts the rows' bytes while they wait to be acknowledged. */
  limiter: MemoryLimiter;
  /** The pipeline's logger (the writer and queue log under it). */
  logger: Logger;
  metrics: Registry;
  /** Where the durable queue reports its state (component `queue`). */
  health: HealthRegistry;
}

/** The pipeline's way to storage: batcher and writer (ack: stored), or durable queue and writer (ack: queued). */
export interface Storing {
  /**
   * Stores encoded rows; resolves once acknowledged. Their bytes are held in memory meanwhile:
   * counted without refusal when `admitted` (the request holds an admission), else admitted here
   * (throws as Admission.grow). Throws RequestTooLarge when they can never fit the durable queue,
   * RetryableError when refused now.
   */
  store(parts: readonly TableRows[], admitted: boolean): Promise<void>;
  /** The durable queue's fill, with ack: queued. */
  queueLoad(): { bytes: number; capacity: number; records: number; stalled: string | undefined } | undefined;
  start(): Promise<void>;
  /** Flushes every batch (or leaves it in the durable queue) and stops the writer. */
  shutdown(): Promise<void>;
}

/** Creates the writer and what feeds it, as `ingest.ack` says. */
export function createStoring(options: StoringOptions): Storing {
  const { config, limiter, logger } = options;
  const queueTooLarge = new Counter({ name: 'heimdall_exporter_queue_too_large_total', help: 'Requests refused for good: alone they are larger than the durable queue (ingest.queue.max_size).', registers: [options.metrics] });
  const writer = createWriter({
    transport: () => options.storage.transport,
    refusal: () => options.storage.refusal(),
    onAttempt: (bytes, error) => options.storage.recordWrite(bytes, error),
    logger,
    metrics: options.metrics,
    initialIntervalMs: config.retry.initial_interval,
    maxIntervalMs: config.retry.max_interval,
    // The durable queue keeps retrying until storage is back; an exporter waiting on ack: stored is told to retry.
    maxElapsedMs: config.ack === 'queued' ? 0 : config.retry.max_elapsed,
  });
  // The embedded engine shares the agent's cores: past two inserts of a table at once, a batch due
  // gathers rows instead of queueing as one more small part to merge. A batch of a tenth of
  // max_rows or more goes once its senders pause (they wait for it) for a twentieth of max_delay.
  const batcher = createBatcher({
    writer,
    maxRows: config.batch.max_rows,
    maxDelayMs: config.batch.max_delay,
    maxInFlight: options.storage.mode === 'embedded' ? EMBEDDED_INSERTS_IN_FLIGHT : undefined,
    quiet: { rows: Math.ceil(config.batch.max_rows / QUIET_ROWS_DIVISOR), ms: Math.max(1, Math.round(config.batch.max_delay / QUIET_DELAY_DIVISOR)) },
  });
  const queue: DurableQueue | undefined =
    config.ack === 'queued'
      ? createDurableQueue({
          path: config.queue.path,
          maxBytes: config.queue.max_size,
          segmentBytes: config.queue.segment_size,
          writer,
          storageReady: () => options.storage.ready,
          maxRows: config.queue.max_rows,
          maxDelayMs: config.queue.max_delay,
          refusedTimeoutMs: config.queue.poison_timeout,
          deadLetterMaxBytes: config.queue.dead_letter_max_size,
          retry: { initialMs: config.retry.initial_interval, maxMs: config.retry.max_interval },
          logger,
          metrics: options.metrics,
          health: options.health,
        })
      : undefined;
  /** Throws RequestTooLarge when a record of `bytes` can never fit in the durable queue (with ack: queued). */
  const checkQueueFits = (bytes: number): void => {
    if (!queue || bytes <= config.queue.max_size) return;
    queueTooLarge.inc();
    throw new RequestTooLarge(`the request's rows take ${bytes} bytes, more than the durable queue holds (ingest.queue.max_size, ${config.queue.max_size} bytes)`);
  };
  return {
    async store(parts, admitted) {
      const bytes = parts.reduce((n, p) => n + p.data.length, 0);
      if (bytes === 0) return;
      // Judged on the record, not the body: a verbose body (JSON) may hold rows that fit.
      checkQueueFits(recordBytes(parts));
      // An admitted request's rows are counted, not refused: they are what stays buffered of it.
      limiter.acquire(bytes, { force: admitted });
      try {
        await (queue ? queue.append(parts) : batcher.add(parts));
      } finally {
        limiter.release(bytes);
      }
    },
    queueLoad: () => queue && { bytes: queue.bytes, capacity: config.queue.max_size, records: queue.depth, stalled: queue.stalled },
    start: async () => queue?.start(),
    async shutdown() {
      await batcher.shutdown();
      await queue?.shutdown();
      writer.shutdown();
    },
  };
}
