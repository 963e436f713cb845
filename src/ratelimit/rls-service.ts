import { RateLimitService } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import type { GrpcServer } from '../server/grpc.js';
import type { RlsAnswer } from './rls-answer.js';

/**
 * Adds Envoy's `envoy.service.ratelimit.v3.RateLimitService` (scope `ratelimit`) to the gRPC
 * server: ShouldRateLimit hands the request's bytes to `answer` (the rate-limit worker) and replies
 * with its encoded response; a request that does not decode is INVALID_ARGUMENT.
 */
export function addRlsService(grpc: GrpcServer, answer: RlsAnswer): void {
  grpc.addService(
    RateLimitService,
    {
      shouldRateLimit: {
        raw: (bytes: Buffer) => answer(bytes),
      },
    },
    'ratelimit',
  );
}
