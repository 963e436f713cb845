import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { Metadata, status } from '@grpc/grpc-js';
import { AgentError, type ErrorCode, type FieldViolation } from '../errors/agent-error.js';

/** An error with a gRPC status code; thrown by handlers, mapped to the call's status once. */
export class GrpcError extends Error {
  override name = 'GrpcError';
  readonly code: status;
  /** Trailing metadata to send with the status (e.g. `grpc-status-details-bin`). */
  readonly metadata: Metadata | undefined;
  constructor(code: status, message: string, metadata?: Metadata) {
    super(message);
    this.code = code;
    this.metadata = metadata;
  }
}

const LEN = WireType.LengthDelimited;

/**
 * Metadata carrying a google.rpc.Status (`grpc-status-details-bin`) with one detail: `value`, an
 * encoded google.rpc message of `type`. Encoded with protobuf-es's wire writer, without the
 * generated descriptors (which the rate-limit worker would otherwise build at start); the same bytes
 * as toBinary of the generated messages (test/unit/server/errors.test.ts).
 */
function statusDetails(code: status, message: string, type: string, value: Uint8Array): Metadata {
  const w = new BinaryWriter();
  if (code !== status.OK) w.tag(1, WireType.Varint).int32(code);
  if (message) w.tag(2, LEN).string(message);
  w.tag(3, LEN).fork().tag(1, LEN).string(`type.googleapis.com/google.rpc.${type}`);
  if (value.length > 0) w.tag(2, LEN).bytes(value);
  w.join();
  const md = new Metadata();
  md.set('grpc-status-details-bin', Buffer.from(w.finish()));
  return md;
}

/** google.rpc.RetryInfo's retry_delay (a google.protobuf.Duration) for `retryAfterMs`. */
export const retryDelay = (retryAfterMs: number): { seconds: number; nanos: number } => ({ seconds: Math.floor(retryAfterMs / 1000), nanos: (retryAfterMs % 1000) * 1e6 });

/** UNAVAILABLE with google.rpc.RetryInfo: the client should retry after `retryAfterMs`. */
function unavailable(message: string, retryAfterMs: number): GrpcError {
  const { seconds, nanos } = retryDelay(retryAfterMs);
  const retryInfo = new BinaryWriter().tag(1, LEN).fork(); // retry_delay, written even when zero (a set message field)
  if (seconds !== 0) retryInfo.tag(1, WireType.Varint).int64(seconds);
  if (nanos !== 0) retryInfo.tag(2, WireType.Varint).int32(nanos);
  return new GrpcError(status.UNAVAILABLE, message, statusDetails(status.UNAVAILABLE, message, 'RetryInfo', retryInfo.join().finish()));
}

/** INVALID_ARGUMENT `message` with google.rpc.BadRequest details listing `violations`. */
function badRequest(message: string, violations: readonly FieldViolation[]): GrpcError {
  const badRequest = new BinaryWriter();
  for (const v of violations) {
    badRequest.tag(1, LEN).fork(); // field_violations
    if (v.field) badRequest.tag(1, LEN).string(v.field);
    if (v.description) badRequest.tag(2, LEN).string(v.description);
    badRequest.join();
  }
  return new GrpcError(status.INVALID_ARGUMENT, message, statusDetails(status.INVALID_ARGUMENT, message, 'BadRequest', badRequest.finish()));
}

/** The gRPC status of each AgentError code (Connect numbers its codes alike). */
export const GRPC_CODE: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  permission_denied: status.PERMISSION_DENIED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
};

/** The HTTP status of each AgentError code. */
export const HTTP_CODE: Record<ErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  unavailable: 503,
  deadline_exceeded: 504,
};

/**
 * The gRPC answer to an error: an AgentError as its status (UNAVAILABLE with RetryInfo when it
 * says when to retry, INVALID_ARGUMENT with BadRequest when it names fields), anything else as it is.
 */
export function asGrpcError(err: unknown): unknown {
  if (!(err instanceof AgentError)) return err;
  if (err.code === 'unavailable' && err.retryAfterMs !== undefined) return unavailable(err.message, err.retryAfterMs);
  if (err.code === 'invalid_argument' && err.violations?.length) return badRequest(err.message, err.violations);
  return new GrpcError(GRPC_CODE[err.code], err.message);
}
