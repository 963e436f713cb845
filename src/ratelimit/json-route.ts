import { fromBinary, fromJson, toBinary, toJson, type JsonValue } from '@bufbuild/protobuf';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, type RateLimitRequest, type RateLimitResponse } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import { ADMIN_MAX_BODY_BYTES, BodyTooLarge, readBody } from '../server/body.js';
import type { HttpServer } from '../server/http.js';
import { sendJson } from '../server/http-router.js';
import type { RlsAnswer } from './rls-answer.js';

/** Characters outside visible ASCII, space and tab (policy names may hold request values). */
const NOT_IN_HEADER = /[^\t\x20-\x7e]/g;

/**
 * Seconds a refused client should wait (`Retry-After`): the longest `duration_until_reset` of the
 * OVER_LIMIT statuses, rounded up; undefined when none carries one (a block-list refusal).
 */
function retryAfter(reply: RateLimitResponse): number | undefined {
  const waits = reply.statuses.flatMap((s) => (s.code === RateLimitResponse_Code.OVER_LIMIT && s.durationUntilReset ? [Math.ceil(Number(s.durationUntilReset.seconds) + s.durationUntilReset.nanos / 1e9)] : []));
  return waits.length > 0 ? Math.max(...waits) : undefined;
}

/**
 * Adds `POST /ratelimit/json` (scope `ratelimit`), the same answer for clients without gRPC: a
 * RateLimitRequest in the protobuf JSON mapping (unknown fields ignored); 200 when OK, 429 when
 * over limit, with the RateLimitResponse as JSON. Its `response_headers_to_add` (the RateLimit
 * headers) are HTTP headers of the answer too (a character a header cannot carry, as in a long
 * value's `…`, becomes `?`), and a 429 carries `Retry-After`. A body that does not parse is 400
 * (413 over 1 MiB); an invalid request throws an AgentError, which the router answers with 400.
 */
export function addJsonRoute(http: HttpServer, answer: RlsAnswer): void {
  http.route(
    'POST',
    '/ratelimit/json',
    async (req, res) => {
      let request: RateLimitRequest;
      try {
        request = fromJson(RateLimitRequestSchema, JSON.parse((await readBody(req, { maxBytes: ADMIN_MAX_BODY_BYTES })).toString('utf8')) as JsonValue, { ignoreUnknownFields: true });
      } catch (err) {
        return sendJson(res, err instanceof BodyTooLarge ? 413 : 400, { error: `malformed RateLimitRequest: ${(err as Error).message}` });
      }
      const reply = fromBinary(RateLimitResponseSchema, await answer(toBinary(RateLimitRequestSchema, request)));
      for (const h of reply.responseHeadersToAdd) res.setHeader(h.key, h.value.replace(NOT_IN_HEADER, '?'));
      const over = reply.overallCode === RateLimitResponse_Code.OVER_LIMIT;
      const wait = over ? retryAfter(reply) : undefined;
      if (wait !== undefined) res.setHeader('Retry-After', String(wait));
      sendJson(res, over ? 429 : 200, toJson(RateLimitResponseSchema, reply));
    },
    { scope: 'ratelimit' },
  );
}
