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
