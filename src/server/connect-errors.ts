import { ConnectError, type Code } from '@connectrpc/connect';
import { AgentError, type FieldViolation } from '../errors/agent-error.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { BadRequestSchema, RetryInfoSchema } from '../gen/google/rpc/error_details_pb.js';
import { GRPC_CODE, GrpcError, retryDelay } from './errors.js';

/** google.rpc.RetryInfo asking to retry after `retryAfterMs`. */
const retryInfo = (retryAfterMs: number): MessageInitShape<typeof RetryInfoSchema> => {
  const { seconds, nanos } = retryDelay(retryAfterMs);
  return { retryDelay: { seconds: BigInt(seconds), nanos } };
};

/** google.rpc.BadRequest listing `violations`. */
const badRequestOf = (violations: readonly FieldViolation[]): MessageInitShape<typeof BadRequestSchema> => ({ fieldViolations: violations.map((v) => ({ field: v.field, description: v.description })) });

/**
 * The Connect answer to an error, with the same code, message and details as asGrpcError's status:
 * an AgentError as its code (RetryInfo when it says when to retry, BadRequest when it names
 * fields), a GrpcError by its code (gRPC and Connect number their codes alike), anything else as it is.
 * Apart from errors.ts so that only the Connect router loads @connectrpc/connect.
 */
export function asConnectError(err: unknown): unknown {
  if (err instanceof GrpcError) return new ConnectError(err.message, err.code as number);
  if (!(err instanceof AgentError)) return err;
  const code = GRPC_CODE[err.code] as number as Code;
  if (err.code === 'unavailable' && err.retryAfterMs !== undefined) return new ConnectError(err.message, code, undefined, [{ desc: RetryInfoSchema, value: retryInfo(err.retryAfterMs) }]);
  if (err.code === 'invalid_argument' && err.violations?.length) return new ConnectError(err.message, code, undefined, [{ desc: BadRequestSchema, value: badRequestOf(err.violations) }]);
  return new ConnectError(err.message, code);
}
