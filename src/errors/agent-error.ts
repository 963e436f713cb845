/** What went wrong, in words every transport has (gRPC status, HTTP code). */
export type ErrorCode = 'invalid_argument' | 'not_found' | 'already_exists' | 'failed_precondition' | 'permission_denied' | 'resource_exhausted' | 'unavailable' | 'deadline_exceeded';

/**
 * A refusal domain code throws without knowing the transport: its code, a message for the
 * client, and for `unavailable` how long to wait before retrying. Each transport maps it once
 * (server/errors.ts: the gRPC status, the HTTP code).
 */
export class AgentError extends Error {
  override name = 'AgentError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
