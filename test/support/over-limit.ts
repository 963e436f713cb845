/** A known burst of rate-limit refusals, for the security dashboard's tests. */
import { expect } from 'vitest';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { testClient } from './grpc-client.js';

/** The limits file of the burst: domain `edge`, 2 requests an hour per `remote_address`. */
export const EDGE_LIMITS = 'domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: hour, requests_per_unit: 2 }\n';

/**
 * Over the `edge` limit (EDGE_LIMITS) through ShouldRateLimit on `grpcAddress` with `token`: 192.0.2.50
 * takes the limit, then three checks over it of `threshold` hits each (each window's record of it is an
 * incident however the windows fall); 192.0.2.51 goes 3 hits over once. 3 × threshold + 3 hits over in all.
 */
export async function overLimitBurst(grpcAddress: string, token: string, threshold: number): Promise<void> {
  const rls = testClient(RateLimitService, grpcAddress);
  const check = (ip: string, hitsAddend: number) =>
    rls.unary('ShouldRateLimit', RateLimitRequestSchema, RateLimitResponseSchema, { domain: 'edge', hitsAddend, descriptors: [{ entries: [{ key: 'remote_address', value: ip }] }] }, { authorization: `Bearer ${token}` });
  try {
    expect((await check('192.0.2.50', 2)).reply.overallCode).toBe(RateLimitResponse_Code.OK);
    for (let i = 0; i < 3; i++) expect((await check('192.0.2.50', threshold)).reply.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect((await check('192.0.2.51', 3)).reply.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
  } finally {
    rls.close();
  }
}
