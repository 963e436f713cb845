import { status } from '@grpc/grpc-js';
import { GrpcError, unavailable } from '../../server/errors.js';
import { RequestTooLarge, RetryableError } from './errors.js';
import type { Admission, Pipeline } from './pipeline.js';

/**
 * The gRPC status of a pipeline refusal, as OTLP exporters read it: RetryableError is UNAVAILABLE
 * with RetryInfo (retried), RequestTooLarge is INVALID_ARGUMENT (never retried). Other errors are
 * returned as they are.
 */
export function grpcRefusal(err: unknown): unknown {
  if (err instanceof RetryableError) return unavailable(err.message, err.retryAfterMs);
  if (err instanceof RequestTooLarge) return new GrpcError(status.INVALID_ARGUMENT, err.message);
  return err;
}

/**
 * Reserves pipeline memory for a gRPC request message of up to `bytes` before it is read (the
 * `reserve` of an ingest service; see Pipeline.reserveUnread): the message may be smaller, so this
 * never refuses it for good, only for now (UNAVAILABLE, as a GrpcError).
 */
export function reserveMessage(pipeline: Pick<Pipeline, 'reserveUnread'>, bytes: number): Admission {
  try {
    return pipeline.reserveUnread(bytes);
  } catch (err) {
    throw grpcRefusal(err);
  }
}
