import { fromBinary } from '@bufbuild/protobuf';
import { RateLimitRequestSchema, type RateLimitRequest } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import { AgentError } from '../errors/agent-error.js';
import type { RateLimitCheck } from './check.js';
import { encodeRateLimitResponse } from './wire.js';

/**
 * A RateLimitRequest's wire bytes in, the RateLimitResponse's out: what every transport of Envoy's
 * RLS API hands the rate-limit worker. Rejects with an AgentError: `invalid_argument` for a request
 * that does not decode or does not validate, `unavailable`/`resource_exhausted` when the worker
 * cannot take it.
 */
export type RlsAnswer = (request: Uint8Array) => Promise<Uint8Array>;

/** The answer over `check`: decode the request, check it, encode the reply by hand (see wire.ts). */
export function createRlsAnswer(check: RateLimitCheck): RlsAnswer {
  return async (bytes) => {
    let req: RateLimitRequest;
    try {
      req = fromBinary(RateLimitRequestSchema, bytes);
    } catch (err) {
      throw new AgentError('invalid_argument', `malformed ${RateLimitRequestSchema.typeName}: ${(err as Error).message}`);
    }
    return encodeRateLimitResponse(await check(req));
  };
}
