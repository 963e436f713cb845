import { AgentError } from '../../errors/agent-error.js';

/**
 * Data was refused for a passing reason (memory, queue full, storage down): the client should
 * retry. An `unavailable` AgentError with its retry delay (gRPC UNAVAILABLE with RetryInfo).
 */
export class RetryableError extends AgentError {
  override name = 'RetryableError';
  /** Suggested wait before retrying, in milliseconds. */
  declare readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number) {
    super('unavailable', message, retryAfterMs);
  }
}

/**
 * Data that can never be taken, however long the client waits: alone it is larger than a limit
 * (the memory limit, the durable queue). Not retryable: an `invalid_argument` AgentError (gRPC
 * INVALID_ARGUMENT; the OTLP/HTTP receiver answers it 413).
 */
export class RequestTooLarge extends AgentError {
  override name = 'RequestTooLarge';
  constructor(message: string) {
    super('invalid_argument', message);
  }
}
