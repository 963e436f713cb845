import { RateLimitRequestSchema, RateLimitService } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import { AgentError } from '../errors/agent-error.js';
import type { GrpcServer } from '../server/grpc.js';
import type { RateLimitCheck } from './check.js';
import { encodeRateLimitResponse } from './wire.js';
import { decodeRateLimitRequest, type RateLimitInput } from './wire-request.js';

/**
 * Adds Envoy's `envoy.service.ratelimit.v3.RateLimitService` (scope `ratelimit`) to the gRPC
 * server, answering ShouldRateLimit with `check`. The hot path: the request is decoded and the
 * reply encoded by hand (see wire-request.ts, wire.ts); a request that does not decode is INVALID_ARGUMENT.
 */
export function addRlsService(grpc: GrpcServer, check: RateLimitCheck): void {
  grpc.addService(
    RateLimitService,
    {
      shouldRateLimit: {
        async raw(bytes: Buffer) {
          let req: RateLimitInput;
          try {
            req = decodeRateLimitRequest(bytes);
          } catch (err) {
            throw new AgentError('invalid_argument', `malformed ${RateLimitRequestSchema.typeName}: ${(err as Error).message}`);
          }
          return encodeRateLimitResponse(await check(req));
        },
      },
    },
    'ratelimit',
  );
}
