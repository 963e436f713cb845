import { Counter, type Registry } from 'prom-client';
import type { Config } from '../../config/schema.js';
import type { HealthRegistry } from '../../health/registry.js';
import type { Storage } from '../../storage/storage.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Conversion } from '../otlp/result.js';
import { createEnrichment, DEFAULT_ENRICHMENT_ENV } from '../processors/enrichment.js';
import { createRedaction, DEFAULT_KEY_PATTERNS, type Redaction } from '../processors/redaction.js';
import { createBatcher } from './batcher.js';
import { RequestTooLarge, RetryableError } from './errors.js';
import { encodeTables, type TableRows } from './formats.js';
import { createMemoryLimiter } from './limiter.js';
import { createTurns } from './turns.js';
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
   * body known so far, `perByte` the memory its decoder is expected to take per byte); the admission
   * grows as more of the body arrives, and is settled to the decoded size once it is known. Throws
   * as Admission.grow does (RetryableError too while shutting down).
   */
  admit(bytes: number, perByte: number): Admission;
  /**
   * Reserves `bytes` for a message not read yet (a gRPC message while grpc-js reads it), within
   * half the soft limit, so that requests already read always have room to be decoded; throws as
   * Admission.grow. Settle it to the message's size once read.
   */
  reserveUnread(bytes: number): Admission;
  /**
   * Waits for the caller's turn to run one heavy step (counting, decoding, converting, encoding a
   * request of `bytes`): such steps run one per event-loop iteration, so probes are answered between
   * them. A request under 64 KiB (a few milliseconds in all) goes on at once.
   */
  turn(bytes: number): Promise<void>;
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
   * request can never fit (its memory alone passes ingest.memory.limit).
   */
  grow(bytes: number): void;
  /**
   * Throws as grow would for a body of `bytes` in all (a declared Content-Length): RequestTooLarge
   * when it could never fit, RetryableError when it does not fit now. Reserves nothing.
   */
  expect(bytes: number): void;
  /** Sets the memory reserved to `bytes` (the request's decoded size, once known), reserving more (throws as grow) or giving back. */
  settle(bytes: number): void;
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

/** The share of the soft memory limit messages not read yet may take (see Pipeline.reserveUnread). */
const UNREAD_SHARE = 0.5;

/** Requests from this size up take turns for their heavy steps (see Pipeline.turn). */
const TURN_BYTES = 64 * 1024;

/** Creates the ingest pipeline component. */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { config } = options;
  const logger = options.logger.child({ component: 'pipeline' });
  const reporter = options.health.register('pipeline');
  const limiter = createMemoryLimiter({ limitBytes: config.memory.limit, spikeBytes: config.memory.spike, metrics: options.metrics });
  const turns = createTurns();
  const queueTooLarge = new Counter({ name: 'heimdall_exporter_queue_too_large_total', help: 'Requests refused for good: alone they are larger than the durable queue (ingest.queue.max_size).', registers: [options.metrics] });
  /** Throws RequestTooLarge when a record of `bytes` can never fit in the durable queue (with ack: queued). */
  const checkQueueFits = (bytes: number): void => {
    if (config.ack !== 'queued' || bytes <= config.queue.max_size) return;
    queueTooLarge.inc();
    throw new RequestTooLarge(`the request's rows take ${bytes} bytes, more than the durable queue holds (ingest.queue.max_size, ${config.queue.max_size} bytes)`);
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
  /** An admission of `bytes × perByte`, within `share` of the soft limit. */
  const admit = (bytes: number, perByte: number, share: number): Admission => {
    if (stopping) throw new RetryableError('the agent is shutting down', 1_000);
    let held = 0;
    let released = false;
    const admission: Admission = {
      grow(more) {
        const need = more * perByte;
        limiter.acquire(need, { held, share });
        held += need;
      },
      expect(body) {
        limiter.check(body * perByte - held, held);
      },
      settle(total) {
        if (total > held) limiter.acquire(total - held, { held });
        else limiter.release(held - total);
        held = total;
      },
      release() {
        if (!released) limiter.release(held);
        released = true;
      },
    };
    admission.grow(bytes);
    return admission;
  };

  return {
    name: 'pipeline',
    processors: { redaction, resourceDefaults: enrichment?.attributes ?? {} },
    admit: (bytes, perByte) => admit(bytes, perByte, 1),
    reserveUnread: (bytes) => admit(Math.min(bytes, config.memory.limit), 1, UNREAD_SHARE),
    turn: (bytes) => (bytes < TURN_BYTES ? Promise.resolve() : turns.next()),
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
      // Judged on the record, not the body: a verbose body (JSON) may hold rows that fit.
      checkQueueFits(recordBytes(parts));
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
