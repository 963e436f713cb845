import type { Logger } from '../../telemetry/logger.js';
import type { Checkpoint, CheckpointStore } from './checkpoint.js';
import { attempt } from './consumer-retry.js';
import { isNoSpace } from './queue-files.js';
import type { QueueStatus } from './queue-status.js';

/** Options for createConsumerCheckpoint. */
export interface ConsumerCheckpointOptions {
  checkpoints: CheckpointStore;
  status: QueueStatus;
  logger: Logger;
}

/**
 * The consumer's current checkpoint (queue id, salt, committed mark, plan in flight) and how it
 * advances: durably once the checkpoint file exists, only in memory while it cannot be created (a
 * disk filled before it existed; the consumer then cuts batches that replay the same way).
 */
export interface ConsumerCheckpoint {
  /** The checkpoint as last saved (or as started). */
  readonly current: Checkpoint;
  /** Starts from a checkpoint loaded at start. */
  start(checkpoint: Checkpoint): void;
  /**
   * Makes `next` the current checkpoint, writing it first when the file exists. Throws a StepError
   * ("write the checkpoint (<what>)") when the write fails; the current one stays.
   */
  save(next: Checkpoint, what: string): Promise<void>;
  /**
   * Creates the checkpoint file (with the current checkpoint) when it is missing; while it cannot,
   * sets the `checkpoint` condition of the status and logs each new reason once. Never throws.
   */
  create(): Promise<void>;
}

/** Creates the checkpoint state of a queue consumer. */
export function createConsumerCheckpoint(options: ConsumerCheckpointOptions): ConsumerCheckpoint {
  const { checkpoints, status, logger } = options;
  let cp: Checkpoint = { id: '', salt: Buffer.alloc(0), committed: 0n, plan: undefined };
  /** Why the checkpoint file cannot be created, as last logged. */
  let createFailure: string | undefined;
  return {
    get current() {
      return cp;
    },
    start(checkpoint) {
      cp = checkpoint;
    },
    async save(next, what) {
      if (checkpoints.created) await attempt(`write the checkpoint (${what})`, () => checkpoints.save(next));
      cp = next;
    },
    async create() {
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
    },
  };
}
