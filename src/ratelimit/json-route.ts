import { create, fromJson, toJson, type JsonValue, type MessageInitShape } from '@bufbuild/protobuf';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, type RateLimitRequest } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import { BodyTooLarge, readBody } from '../server/body.js';
import type { HttpServer } from '../server/http.js';
import { sendJson } from '../server/http-router.js';
import type { RateLimitCheck } from './check.js';

/** Largest JSON request body. */
const MAX_BODY_BYTES = 1 << 20;

/**
 * Adds `POST /ratelimit/json` (scope `ratelimit`), the same check for clients without gRPC: a
 * RateLimitRequest in the protobuf JSON mapping (unknown fields ignored); 200 when OK, 429 when
 * over limit, with the RateLimitResponse as JSON. A body that does not parse is 400 (413 over
 * 1 MiB); an invalid request throws an AgentError, which the router answers with 400.
 */
export function addJsonRoute(http: HttpServer, check: RateLimitCheck): void {
  http.route(
    'POST',
    '/ratelimit/json',
    async (req, res) => {
      let request: RateLimitRequest;
      try {
        request = fromJson(RateLimitRequestSchema, JSON.parse((await readBody(req, { maxBytes: MAX_BODY_BYTES })).toString('utf8')) as JsonValue, { ignoreUnknownFields: true });
      } catch (err) {
        return sendJson(res, err instanceof BodyTooLarge ? 413 : 400, { error: `malformed RateLimitRequest: ${(err as Error).message}` });
      }
      const reply = create(RateLimitResponseSchema, (await check(request)) as MessageInitShape<typeof RateLimitResponseSchema>);
      sendJson(res, reply.overallCode === RateLimitResponse_Code.OVER_LIMIT ? 429 : 200, toJson(RateLimitResponseSchema, reply));
    },
    { scope: 'ratelimit' },
  );
}
