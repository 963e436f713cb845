/** What went wrong, in words every transport has (gRPC status, HTTP code). */
export type ErrorCode = 'invalid_argument' | 'not_found' | 'already_exists' | 'failed_precondition' | 'permission_denied' | 'resource_exhausted' | 'unavailable' | 'deadline_exceeded';

/** One field of a request that is not acceptable (google.rpc.BadRequest's FieldViolation). */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * A refusal domain code throws without knowing the transport: its code, a message for the
 * client, for `unavailable` how long to wait before retrying, and for `invalid_argument` the
 * fields at fault. Each transport maps it once (server/errors.ts: the gRPC status with its
 * details, the HTTP code with Retry-After and `violations`).
 */
export class AgentError extends Error {
  override name = 'AgentError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
    readonly violations?: readonly FieldViolation[],
  ) {
    super(message);
  }
}

/** An invalid_argument AgentError naming the fields at fault; its message quotes the first three. */
export function invalidFields(violations: readonly FieldViolation[]): AgentError {
  const shown = violations.slice(0, 3).map((v) => `${v.field}: ${v.description}`);
  const message = shown.join('; ') + (violations.length > shown.length ? `; and ${violations.length - shown.length} more` : '');
  return new AgentError('invalid_argument', message, undefined, violations);
}
