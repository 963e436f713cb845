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

/**
 * As RlsAnswer, in the worker: the reply itself when no Redis decision is awaited (no promise, no
 * microtask), else its promise; a request that does not decode or validate throws its AgentError.
 */
export type RlsReply = (request: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** The reply over `check`: decode the request and encode the reply by hand (see wire-request.ts, wire.ts), check it. */
export function createRlsReply(check: RateLimitCheck): RlsReply {
  return (bytes) => {
    let req: RateLimitInput;
    try {
      req = decodeRateLimitRequest(bytes);
    } catch (err) {
      throw new AgentError('invalid_argument', `malformed ${RLS.request}: ${(err as Error).message}`);
    }
    const response = check(req);
    return response instanceof Promise ? response.then(encodeRateLimitResponse) : encodeRateLimitResponse(response);
  };
}

/** The answer over `check`, always a promise (what createRlsReply throws, it rejects with). */
export function createRlsAnswer(check: RateLimitCheck): RlsAnswer {
  const reply = createRlsReply(check);
  return async (bytes) => reply(bytes);
}
