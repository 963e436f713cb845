import type { Logger } from '../../telemetry/logger.js';
import { backoffMs } from '../../time/backoff.js';
import { isNoSpace } from './queue-files.js';
import type { QueueStatus } from './queue-status.js';

/** A consumer step that failed, with what it was doing. */
export class StepError extends Error {
  override name = 'StepError';
  constructor(
    readonly what: string,
    override readonly cause: unknown,
  ) {
    super(`cannot ${what}: ${(cause as Error).message}`);
  }
}

/** Runs `fn`; a failure is rethrown as a StepError saying what failed (`what`, e.g. "read the queue"). */
export const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (err) {
    throw new StepError(what, err);
  }
};

const duration = (ms: number): string => (ms < 1_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1_000)} s`);

/** Options for createConsumerRetry. */
export interface ConsumerRetryOptions {
  /** Backoff between retries (first, longest). */
  retry: { initialMs: number; maxMs: number };
  status: QueueStatus;
  logger: Logger;
}

/**
 * The consumer's failures in a row: each failed step sets the `consumer` condition of the status
 * (the reason, "waiting for disk space" on ENOSPC) and says how long to wait (exponential backoff);
 * the first failure and every tenth is logged. A step that works clears the condition and logs
 * that the consumer moves again, once.
 */
export interface ConsumerRetry {
  /** A step worked. */
  succeeded(): void;
  /** A step failed with `err` (a StepError says what it was doing): returns the delay before the next attempt. */
  failed(err: unknown): number;
}

/** Creates the retry state of a queue consumer. */
export function createConsumerRetry(options: ConsumerRetryOptions): ConsumerRetry {
  const { status, logger } = options;
  let failures = 0;
  return {
    succeeded() {
      if (failures > 0) logger.info({ attempts: failures }, 'durable queue: the consumer is moving again');
      failures = 0;
      status.set('consumer', undefined);
    },
    failed(err) {
      failures += 1;
      const delay = backoffMs(failures, options.retry.initialMs, options.retry.maxMs);
      const cause = err instanceof StepError ? err.cause : err;
      const what = err instanceof StepError ? err.what : 'consume';
      const code = (cause as NodeJS.ErrnoException).code;
      const reason = `${isNoSpace(cause) ? 'waiting for disk space: ' : ''}cannot ${what}: ${code ?? (cause as Error).message}; retrying in ${duration(delay)}`;
      status.set('consumer', reason);
      if (failures === 1 || failures % 10 === 0) logger.error({ err: cause, attempt: failures, retryInMs: delay }, `durable queue: ${reason}`);
      return delay;
    },
  };
}
