import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { anyPack, DurationSchema, type Any } from '@bufbuild/protobuf/wkt';
import { Metadata, status } from '@grpc/grpc-js';
import { BadRequestSchema, RetryInfoSchema } from '../gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../gen/google/rpc/status_pb.js';
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

/** Metadata carrying a google.rpc.Status with details (`grpc-status-details-bin`). */
function statusDetails(code: status, message: string, details: Any[]): Metadata {
  const md = new Metadata();
  md.set('grpc-status-details-bin', Buffer.from(toBinary(StatusSchema, create(StatusSchema, { code, message, details }))));
  return md;
}

/** google.rpc.RetryInfo asking to retry after `retryAfterMs`. */
export const retryInfo = (retryAfterMs: number): MessageInitShape<typeof RetryInfoSchema> => ({
  retryDelay: create(DurationSchema, { seconds: BigInt(Math.floor(retryAfterMs / 1000)), nanos: (retryAfterMs % 1000) * 1e6 }),
});

/** google.rpc.BadRequest listing `violations`. */
export const badRequestOf = (violations: readonly FieldViolation[]): MessageInitShape<typeof BadRequestSchema> => ({ fieldViolations: violations.map((v) => ({ field: v.field, description: v.description })) });

/** UNAVAILABLE with google.rpc.RetryInfo: the client should retry after `retryAfterMs`. */
export function unavailable(message: string, retryAfterMs: number): GrpcError {
  return new GrpcError(status.UNAVAILABLE, message, statusDetails(status.UNAVAILABLE, message, [anyPack(RetryInfoSchema, create(RetryInfoSchema, retryInfo(retryAfterMs)))]));
}

/** INVALID_ARGUMENT `message` with google.rpc.BadRequest details listing `violations`. */
function badRequest(message: string, violations: readonly FieldViolation[]): GrpcError {
  return new GrpcError(status.INVALID_ARGUMENT, message, statusDetails(status.INVALID_ARGUMENT, message, [anyPack(BadRequestSchema, create(BadRequestSchema, badRequestOf(violations)))]));
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
