import { Counter, type Registry } from 'prom-client';
import type { Config } from '../../config/schema.js';
import type { HealthRegistry } from '../../health/registry.js';
import type { Storage } from '../../storage/storage.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Conversion } from '../otlp/result.js';
import { createEnrichment, DEFAULT_ENRICHMENT_ENV } from '../processors/enrichment.js';
import { createRedaction, DEFAULT_KEY_PATTERNS, type Redaction } from '../processors/redaction.js';
import { createBatcher, type TableRows } from './batcher.js';
import { RequestTooLarge, RetryableError } from './errors.js';
import { encodeTables } from './formats.js';
import { createMemoryLimiter } from './limiter.js';
import { createDurableQueue, type DurableQueue } from './queue.js';
import { recordBytes } from './wal.js';
import { createWriter } from './writer.js';

/** Options for createPipeline. */
export interface PipelineOptions {
  /** The `ingest` section of the configuration. */
  config: Config['ingest'];
  /** Where batches go; the writer waits while it is not ready. */
  storage: Storage;
  /** The agent's logger; the pipeline logs as components `pipeline`, `writer` and `queue`. */
  logger: Logger;
  /** Registry for the limiter, batch, writer and queue metrics. */
  metrics: Registry;
  /** Where the pipeline reports its state, as component `pipeline` (and the durable queue as `queue`). */
  health: HealthRegistry;
}

/** receive -> memory limiter -> processors -> batcher -> writer, with the configured acknowledgement. */
export interface Pipeline {
  readonly name: 'pipeline';
  /** Runs the processors (enrichment, redaction) over a conversion and encodes its rows per table. */
  process(c: Conversion): TableRows[];
  /**
   * Stores encoded rows. Resolves when they are acknowledged (stored in ClickHouse, or in the
   * durable queue with ack: queued); throws RetryableError when refused.
   */
  submit(parts: readonly TableRows[]): Promise<void>;
  /**
   * Admits a request before it is read or decoded: reserves `bytes × perByte` of memory (`bytes` of
   * body known so far, `perByte` the memory its decoder takes per byte); the admission grows as more
   * of the body arrives. Throws as Admission.grow does (RetryableError too while shutting down).
   */
  admit(bytes: number, perByte: number): Admission;
  /** How full the pipeline is: memory held against its limit, and the durable queue (with ack: queued). */
  load(): PipelineLoad;
  /** The processors, for writers that encode rows themselves (the OTLP trace hot path, events). */
  readonly processors: { redaction: Redaction | undefined; resourceDefaults: Readonly<Record<string, string>> };
  start(): Promise<void>;
  /** Stops taking data, flushes every batch (or leaves it in the durable queue), stops the writer. Safe to call twice. */
  shutdown(): Promise<void>;
}

/** The memory held for one request while it is read, decoded and converted. */
export interface Admission {
  /**
   * Reserves room for `bytes` more of the request's body (as read, or as decompressed). Throws
   * RetryableError when there is no room now (memory, shutting down), RequestTooLarge when the
   * request can never fit (its memory alone passes ingest.memory.limit, or its body is larger than
   * the durable queue with ack: queued).
   */
  grow(bytes: number): void;
  /** Raises the memory reserved per byte of body to `perByte`, for what was read so far too (a decoder that takes more than planned); throws as grow. */
  raise(perByte: number): void;
  /** Gives the memory back. Safe to call twice. */
  release(): void;
}

/** What the pipeline holds (bytes). */
export interface PipelineLoad {
  memoryBytes: number;
  memoryLimit: number;
  /** Absent with ack: stored (no durable queue). `stalled`: why it cannot append or consume on its own (the disk), when it cannot. */
  queue?: { bytes: number; capacity: number; records: number; stalled: string | undefined } | undefined;
}

/** Creates the ingest pipeline component. */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { config } = options;
  const logger = options.logger.child({ component: 'pipeline' });
  const reporter = options.health.register('pipeline');
  const limiter = createMemoryLimiter({ limitBytes: config.memory.limit, spikeBytes: config.memory.spike, metrics: options.metrics });
  const queueTooLarge = new Counter({ name: 'heimdall_exporter_queue_too_large_total', help: 'Requests refused for good: alone they are larger than the durable queue (ingest.queue.max_size).', registers: [options.metrics] });
  /** Throws RequestTooLarge when `bytes` can never fit in the durable queue (with ack: queued). */
  const checkQueueFits = (bytes: number, what: string): void => {
    if (config.ack !== 'queued' || bytes <= config.queue.max_size) return;
    queueTooLarge.inc();
    throw new RequestTooLarge(`${what} of ${bytes} bytes is larger than the durable queue (ingest.queue.max_size, ${config.queue.max_size} bytes)`);
  };
  const redaction = config.redaction.enabled
    ? createRedaction({
        keys: [...(config.redaction.defaults ? DEFAULT_KEY_PATTERNS : []), ...config.redaction.keys],
        values: config.redaction.values,
        builtins: config.redaction.defaults,
        replacement: config.redaction.replacement,
      })
    : undefined;
  const enrichment = config.enrichment.enabled ? createEnrichment(config.enrichment.from_env ?? DEFAULT_ENRICHMENT_ENV) : undefined;
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
  const batcher = createBatcher({ writer, maxRows: config.batch.max_rows, maxDelayMs: config.batch.max_delay, metrics: options.metrics });
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
  let stopping = false;

  return {
    name: 'pipeline',
    processors: { redaction, resourceDefaults: enrichment?.attributes ?? {} },
    admit(bytes, perByte) {
      if (stopping) throw new RetryableError('the agent is shutting down', 1_000);
      let body = 0;
      let rate = perByte;
      let held = 0;
      let released = false;
      const reserve = (more: number): void => {
        limiter.acquire(more, { held });
        held += more;
      };
      const admission: Admission = {
        grow(more) {
          checkQueueFits(body + more, 'the request');
          reserve(more * rate);
          body += more;
        },
        raise(nextPerByte) {
          if (nextPerByte > rate) reserve(body * (nextPerByte - rate));
          rate = Math.max(rate, nextPerByte);
        },
        release() {
          if (!released) limiter.release(held);
          released = true;
        },
      };
      admission.grow(bytes);
      return admission;
    },
    load() {
      return { memoryBytes: limiter.buffered, memoryLimit: config.memory.limit, queue: queue && { bytes: queue.bytes, capacity: config.queue.max_size, records: queue.depth, stalled: queue.stalled } };
    },
    process(c) {
      enrichment?.process(c);
      redaction?.process(c);
      return encodeTables(c);
    },
    async submit(parts) {
      if (stopping) throw new RetryableError('the agent is shutting down', 1_000);
      const bytes = parts.reduce((n, p) => n + p.data.length, 0);
      if (bytes === 0) return;
      checkQueueFits(recordBytes(parts), 'a record');
      // Counted, not refused: the request was admitted; its rows are what stays buffered.
      limiter.acquire(bytes, { force: true });
      try {
        await (queue ? queue.append(parts) : batcher.add(parts));
      } finally {
        limiter.release(bytes);
      }
    },
    async start() {
      if (queue) await queue.start();
      reporter.set('ready');
      logger.info({ ack: config.ack, redaction: Boolean(redaction), enrichment: enrichment?.attributes ?? {} }, 'ingest pipeline ready');
    },
    async shutdown() {
      if (stopping) return;
      stopping = true;
      reporter.set('stopping');
      await batcher.shutdown();
      await queue?.shutdown();
      writer.shutdown();
      logger.info('ingest pipeline stopped');
    },
  };
}
