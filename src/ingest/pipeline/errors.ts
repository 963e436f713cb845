/** Data was refused for a passing reason (memory, queue full, storage down): the client should retry. */
export class RetryableError extends Error {
  override name = 'RetryableError';
  /** Suggested wait before retrying, in milliseconds. */
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Data that can never be taken, however long the client waits: alone it is larger than a limit
 * (the memory limit, the durable queue). Not retryable: HTTP 413, gRPC INVALID_ARGUMENT.
 */
export class RequestTooLarge extends Error {
  override name = 'RequestTooLarge';
}
