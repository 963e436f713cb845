/** The RLS gRPC service and POST /ratelimit/json over real loopback servers: thin adapters over one check. */
import { create, toBinary } from '@bufbuild/protobuf';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../src/auth/auth.js';
import { validateConfig } from '../../../src/config/load.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, RateLimitService } from '../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createBuckets } from '../../../src/ratelimit/backends.js';
import { createRateLimitCheck } from '../../../src/ratelimit/check.js';
import { parseDomainFile } from '../../../src/ratelimit/config.js';
import { addJsonRoute } from '../../../src/ratelimit/json-route.js';
import { createRlsAnswer } from '../../../src/ratelimit/rls-answer.js';
import { addRlsService } from '../../../src/ratelimit/rls-service.js';
import { createLimitStats } from '../../../src/ratelimit/stats.js';
import { createGrpcServer, type GrpcServer } from '../../../src/server/grpc.js';
import { createHttpServer, type HttpServer } from '../../../src/server/http.js';
import { createSeriesLimits } from '../../../src/telemetry/series-limits.js';
import { testClient, type TestClient } from '../../support/grpc-client.js';
import { silentLogger } from '../../support/temp.js';

/** `open` allows everything, `closed` nothing (0 a second). */
const LIMITS = 'domain: api\ndescriptors:\n  - key: path\n    value: open\n    rate_limit: { unlimited: true }\n  - key: path\n    value: closed\n    rate_limit: { unit: second, requests_per_unit: 0 }\n';

describe('rate-limit transports', () => {
  let grpc: GrpcServer;
  let http: HttpServer;
  let client: TestClient;
  let url: string;
  const request = (value: string, domain = 'api') => ({ domain, descriptors: [{ entries: [{ key: 'path', value }] }] });

  beforeAll(async () => {
    const logger = silentLogger();
    const metrics = new Registry();
    const health = createHealthRegistry();
    const config = validateConfig({ server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } } });
    const auth = createAuthenticator(config.auth, { logger, health, metrics });
    grpc = createGrpcServer({ config: config.server.grpc, logger, metrics, health, auth });
    http = createHttpServer({ name: 'admin', config: config.server.admin, logger, metrics, health, auth });
    const { domain, root } = parseDomainFile('limits.yaml', LIMITS);
    const stats = createLimitStats(metrics, createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger }), 1_000);
    const buckets = createBuckets({ config: config.ratelimit, now: () => 0, logger, metrics, health });
    const check = createRateLimitCheck({ config: config.ratelimit, limits: { current: new Map([[domain, root]]) }, buckets, stats });
    // The answer the rate-limit worker gives every transport (bytes in, bytes out).
    const answer = createRlsAnswer(check);
    addRlsService(grpc, answer);
    addJsonRoute(http, answer);
    await grpc.start();
    await http.start();
    client = testClient(RateLimitService, `127.0.0.1:${grpc.port}`);
    url = `http://127.0.0.1:${http.port}/ratelimit/json`;
  });
  afterAll(async () => {
    client.close();
    await grpc.shutdown();
    await http.shutdown();
  });

  it('gRPC: answers ShouldRateLimit with the check; INVALID_ARGUMENT for an invalid or undecodable request', async () => {
    const call = (value: string, domain?: string) => client.unary('ShouldRateLimit', RateLimitRequestSchema, RateLimitResponseSchema, request(value, domain));
    expect((await call('open')).reply.overallCode).toBe(RateLimitResponse_Code.OK);
    expect((await call('closed')).reply.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    await expect(call('open', '')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: 'domain: is required' });
    // Field 1 (domain) says 100 bytes follow; none do.
    const malformed = await new Promise<ServiceError | null>((resolve) => {
      const identity = (b: Buffer) => b;
      client.raw.makeUnaryRequest(`/${RateLimitService.typeName}/ShouldRateLimit`, identity, identity, Buffer.from([0x0a, 100]), (err) => resolve(err));
    });
    expect(malformed?.code).toBe(status.INVALID_ARGUMENT);
    expect(malformed?.details).toMatch(/^malformed envoy\.service\.ratelimit\.v3\.RateLimitRequest: /);
  });

  it('HTTP: 200 when OK, 429 over the limit, 400 for an invalid or unparsable body, 413 past 1 MiB', async () => {
    const post = (body: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const ok = await post(JSON.stringify(request('open')));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ overallCode: 'OK' });
    const over = await post(JSON.stringify({ ...request('closed'), unknownField: 1 }));
    expect(over.status).toBe(429);
    expect(await over.json()).toMatchObject({ overallCode: 'OVER_LIMIT' });
    const invalid = await post(JSON.stringify(request('open', '')));
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: 'domain: is required' });
    const unparsable = await post('{');
    expect(unparsable.status).toBe(400);
    expect(((await unparsable.json()) as { error: string }).error).toMatch(/^malformed RateLimitRequest: /);
    expect((await post(`"${'x'.repeat(1 << 20)}"`)).status).toBe(413);
  });

  it('the hand-encoded gRPC reply decodes to what the check answered', async () => {
    const { reply } = await client.unary('ShouldRateLimit', RateLimitRequestSchema, RateLimitResponseSchema, request('open'));
    expect(toBinary(RateLimitResponseSchema, reply)).toEqual(toBinary(RateLimitResponseSchema, create(RateLimitResponseSchema, { overallCode: RateLimitResponse_Code.OK, statuses: [{ code: RateLimitResponse_Code.OK, limitRemaining: 4_294_967_295 }] })));
  });
});
