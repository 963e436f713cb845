import { AgentError } from '../errors/agent-error.js';
import type { RateLimitCheck } from './check.js';
import { encodeRateLimitResponse, RLS } from './wire.js';
import { decodeRateLimitRequest, type RateLimitInput } from './wire-request.js';

/**
 * A RateLimitRequest's wire bytes in, the RateLimitResponse's out: what every transport of Envoy's
 * RLS API hands the rate-limit worker. Rejects with an AgentError: `invalid_argument` for a request
 * that does not decode or does not validate, `unavailable`/`resource_exhausted` when the worker
 * cannot take it.
 */
export type RlsAnswer = (request: Uint8Array) => Promise<Uint8Array>;

/** The answer over `check`: decode the request and encode the reply by hand (see wire-request.ts, wire.ts), check it. */
export function createRlsAnswer(check: RateLimitCheck): RlsAnswer {
  return async (bytes) => {
    let req: RateLimitInput;
    try {
      req = decodeRateLimitRequest(bytes);
    } catch (err) {
      throw new AgentError('invalid_argument', `malformed ${RLS.request}: ${(err as Error).message}`);
    }
    return encodeRateLimitResponse(await check(req));
  };
}
