import type { Registry } from 'prom-client';
import type { Config } from '../../config/schema.js';
import type { HealthRegistry } from '../../health/registry.js';
import type { Storage } from '../../storage/storage.js';
import type { Logger } from '../../telemetry/logger.js';
import { createAdmission, type Admission } from './admission.js';
import { RetryableError } from './errors.js';
import { createMemoryLimiter } from './limiter.js';
import { createProcessing, type Batch } from './processing.js';
import { createStoring } from './storing.js';
import { createTurns } from './turns.js';

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

/**
 * receive -> memory limiter -> processors -> batcher -> writer, with the configured acknowledgement.
 * Data enters by one door, `consume`; `admit`, `reserveUnread` and `turn` let a receiver hold memory
 * for a request before it is read and decode it in steps.
 */
export interface Pipeline {
  readonly name: 'pipeline';
  /**
   * The entry for data: processes (enrichment, redaction) and encodes a batch, synchronously before
   * it returns its promise (a conversion's rows may be read then, as they will be stored), and stores
   * the rows. Resolves when they are acknowledged (stored in ClickHouse, or in the durable queue with
   * ack: queued), at once when there are none or the batch's encoder declined. With `admission` (the
   * memory the request holds since it was read), the rows' bytes are counted on top of it, never
   * refused; without one (data that was never a request body: the agent's own events), the rows are
   * admitted here by their size. Throws RetryableError when refused now (memory, queue, storage,
   * shutting down), RequestTooLarge when the rows can never fit (memory limit, durable queue).
   */
  consume(batch: Batch, admission?: Admission): Promise<void>;
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
   * Admission.grow, except that with `wait` no room now is undefined instead (the caller waits and
   * asks again). Settle it to the message's size once read.
   */
  reserveUnread(bytes: number, wait?: boolean): Admission | undefined;
  /**
   * Waits for the caller's turn to run one heavy step (counting, decoding, converting, encoding a
   * request of `bytes`): such steps run one per event-loop iteration, so probes are answered between
   * them. A request under 64 KiB (a few milliseconds in all) goes on at once.
   */
  turn(bytes: number): Promise<void>;
  /** How full the pipeline is: memory held against its limit, and the durable queue (with ack: queued). */
  load(): PipelineLoad;
  start(): Promise<void>;
  /** Stops taking data, flushes every batch (or leaves it in the durable queue), stops the writer. Safe to call twice. */
  shutdown(): Promise<void>;
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

/** Creates the ingest pipeline component: wires the memory limiter, the processors, the turns and the way to storage. */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { config } = options;
  const logger = options.logger.child({ component: 'pipeline' });
  const reporter = options.health.register('pipeline');
  const limiter = createMemoryLimiter({ limitBytes: config.memory.limit, spikeBytes: config.memory.spike, metrics: options.metrics });
  const processing = createProcessing(config);
  const storing = createStoring({ config, storage: options.storage, limiter, logger, metrics: options.metrics, health: options.health });
  const turns = createTurns();
  let stopping = false;
  const open = (): void => {
    if (stopping) throw new RetryableError('the agent is shutting down', 1_000);
  };

  return {
    name: 'pipeline',
    // Not async: the batch (a conversion's rows) is not held while its encoded rows wait for storage.
    consume(batch, admission) {
      try {
        const parts = processing.encode(batch);
        if (!parts) return Promise.resolve();
        open();
        return storing.store(parts, admission !== undefined);
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what encoding or open() threw, as it is
        return Promise.reject(err);
      }
    },
    admit: (bytes, perByte) => (open(), createAdmission(limiter, bytes, perByte, 1)),
    reserveUnread(bytes, wait = false) {
      open();
      const need = Math.min(bytes, config.memory.limit);
      return wait && !limiter.hasRoom(need, UNREAD_SHARE) ? undefined : createAdmission(limiter, need, 1, UNREAD_SHARE);
    },
    turn: (bytes) => (bytes < TURN_BYTES ? Promise.resolve() : turns.next()),
    load: () => ({ memoryBytes: limiter.buffered, memoryLimit: config.memory.limit, queue: storing.queueLoad() }),
    async start() {
      await storing.start();
      reporter.set('ready');
      logger.info({ ack: config.ack, redaction: Boolean(processing.processors.redaction), enrichment: processing.processors.resourceDefaults }, 'ingest pipeline ready');
    },
    async shutdown() {
      if (stopping) return;
      stopping = true;
      reporter.set('stopping');
      await storing.shutdown();
      logger.info('ingest pipeline stopped');
    },
  };
}
