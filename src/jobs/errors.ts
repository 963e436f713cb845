/** Why a jobs operation was refused; the RPC layer maps `code` to a gRPC status once. */
export class JobError extends Error {
  override name = 'JobError';
  constructor(
    readonly code: 'not_found' | 'already_exists' | 'failed_precondition' | 'unavailable' | 'resource_exhausted' | 'invalid_argument',
    message: string,
  ) {
    super(message);
  }
}
