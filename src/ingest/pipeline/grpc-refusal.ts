import { asGrpcError } from '../../server/errors.js';
import type { Admission } from './admission.js';
import type { Pipeline } from './pipeline.js';

/**
 * Reserves pipeline memory for a gRPC request message of up to `bytes` before it is read (the
 * `reserve` of an ingest service; see Pipeline.reserveUnread): the message may be smaller, so this
 * never refuses it for good, only for now. Throws the refusal as its gRPC status (UNAVAILABLE with
 * RetryInfo), which the server's admission reads to let the call wait for room rather than end it.
 */
export function reserveMessage(pipeline: Pick<Pipeline, 'reserveUnread'>, bytes: number): Admission {
  try {
    return pipeline.reserveUnread(bytes);
  } catch (err) {
    throw asGrpcError(err);
  }
}
