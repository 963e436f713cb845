/** API tokens: every protected RPC and route x no token / unknown token / wrong scope / right scope, and tenant isolation. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { validateConfig } from '../../src/config/load.js';
import { EventService, Severity, StreamEventsRequestSchema } from '../../src/gen/heimdall/v1/events_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { SystemService } from '../../src/gen/heimdall/v1/system_pb.js';
import { SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { LogsService } from '../../src/gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import { MetricsService } from '../../src/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import { TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { encodeTraces, traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';

const TOKENS = {
  ingestA: 'ingest-token-tenant-a-0001',
  queryA: 'query-token-tenant-a-00001',
  queryB: 'query-token-tenant-b-00001',
  admin: 'admin-token-000000000001',
  everything: 'all-scopes-token-0000001',
};

const code = async (p: Promise<unknown>): Promise<number> => {
  try {
    await p;
    return status.OK;
  } catch (err) {
    return (err as ServiceError).code;
  }
};

describe('access control', () => {
  let t: TestAgent;
  const dir = tempDir();
  beforeAll(async () => {
    // Two tokens from config, the rest from a mounted secret file.
    const file = join(dir.path, 'tokens.yaml');
    writeFileSync(
      file,
      [
        `- { name: query-b, token: ${TOKENS.queryB}, scopes: [query], tenant: b }`,
        `- { name: admin, token: ${TOKENS.admin}, scopes: [admin] }`,
        `- { name: everything, token: ${TOKENS.everything}, scopes: [ingest, query, admin, ratelimit] }`,
      ].join('\n'),
    );
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'ingest-a', token: TOKENS.ingestA, scopes: ['ingest'], tenant: 'a' },
          { name: 'query-a', token: TOKENS.queryA, scopes: ['query'], tenant: 'a' },
        ],
        tokens_file: file,
      },
    });
  });
  afterAll(async () => {
    await t.stop();
    dir.cleanup();
  });

  const client = (token?: string) => connect({ addr: t.grpcAddress, token });
  const event = { events: [{ eventType: 'auth.test', source: 'auth', severity: Severity.INFO, message: 'm', tenantId: 'spoofed' }] };
  const rpcs: Array<{ name: string; scope: string; call: (token?: string) => Promise<unknown> }> = [
    { name: 'WriteEvents', scope: 'ingest', call: (tk) => client(tk).unary(EventService.method.writeEvents, event) },
    {
      name: 'StreamEvents',
      scope: 'ingest',
      call: (tk) =>
        new Promise((resolve, reject) => {
          const raw = new Client(t.grpcAddress, credentials.createInsecure());
          const md = new Metadata();
          if (tk) md.set('authorization', `Bearer ${tk}`);
          const call = raw.makeClientStreamRequest('/heimdall.v1.EventService/StreamEvents', (b: Buffer) => b, (b: Buffer) => b, md, (err, reply) => {
            raw.close();
            if (err) reject(err);
            else resolve(reply);
          });
          call.write(Buffer.from(toBinary(StreamEventsRequestSchema, create(StreamEventsRequestSchema, event))));
          call.end();
        }),
    },
    { name: 'ListEvents', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.listEvents, {}) },
    { name: 'ListLogs', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.listLogs, {}) },
    { name: 'GetTrace', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.getTrace, { id: { case: 'correlationId', value: 'x' } }) },
    { name: 'GetSummary', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.getSummary, {}) },
    { name: 'ListServices', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.listServices, {}) },
    { name: 'SearchTraces', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.searchTraces, {}) },
    { name: 'GetRedSeries', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.getRedSeries, {}) },
    { name: 'GetEventSeries', scope: 'query', call: (tk) => client(tk).unary(QueryService.method.getEventSeries, {}) },
    { name: 'Trace Export', scope: 'ingest', call: (tk) => client(tk).unary(TraceService.method.export, traceRequest('auth', 1)) },
    { name: 'Logs Export', scope: 'ingest', call: (tk) => client(tk).unary(LogsService.method.export, {}) },
    { name: 'Metrics Export', scope: 'ingest', call: (tk) => client(tk).unary(MetricsService.method.export, {}) },
    { name: 'GetStatus', scope: 'admin', call: (tk) => client(tk).unary(SystemService.method.getStatus, {}) },
    { name: 'SecurityService GetState', scope: 'admin', call: (tk) => client(tk).unary(SecurityService.method.getState, {}) },
    { name: 'SecurityService ListActions', scope: 'admin', call: (tk) => client(tk).unary(SecurityService.method.listActions, {}) },
    { name: 'ShouldRateLimit', scope: 'ratelimit', call: (tk) => client(tk).unary(RateLimitService.method.shouldRateLimit, { domain: 'd', descriptors: [{ entries: [{ key: 'k', value: 'v' }] }] }) },
  ];
  const tokenWith: Record<string, string> = { ingest: TOKENS.ingestA, query: TOKENS.queryA, admin: TOKENS.admin, ratelimit: TOKENS.everything };
  const tokenWithout: Record<string, string> = { ingest: TOKENS.queryA, query: TOKENS.admin, admin: TOKENS.ingestA, ratelimit: TOKENS.admin };

  it.each(rpcs)('$name: UNAUTHENTICATED without or with an unknown token, PERMISSION_DENIED without the scope, OK with it', async ({ scope, call }) => {
    expect(await code(call())).toBe(status.UNAUTHENTICATED);
    expect(await code(call('not-a-real-token-123456'))).toBe(status.UNAUTHENTICATED);
    expect(await code(call(tokenWithout[scope]))).toBe(status.PERMISSION_DENIED);
    expect(await code(call(tokenWith[scope]))).toBe(status.OK);
    expect(await code(call(TOKENS.everything))).toBe(status.OK);
  });

  it('keeps health checks open', async () => {
    expect(await code(client().unary(Health.method.check, {}))).toBe(status.OK);
  });

  it('protects OTLP/HTTP (ingest) and /status (admin) with 401 and 403; probes and /metrics stay open', async () => {
    const post = (token?: string) =>
      fetch(`${t.otlpHttpUrl}/v1/traces`, {
        method: 'POST',
        body: encodeTraces(traceRequest('auth-http', 1)),
        headers: { 'content-type': 'application/x-protobuf', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
    const none = await post();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect((await post(TOKENS.queryA)).status).toBe(403);
    expect((await post(TOKENS.ingestA)).status).toBe(200);
    const st = (token?: string) => fetch(`${t.adminUrl}/status`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await st()).status).toBe(401);
    expect((await st(TOKENS.queryA)).status).toBe(403);
    expect((await st(TOKENS.admin)).status).toBe(200);
    for (const path of ['/livez', '/readyz', '/metrics']) expect((await fetch(`${t.adminUrl}${path}`)).status).toBe(200);
  });

  it('binds tenant tokens to their tenant: writes carry it, reads see only it', async () => {
    const ingest = client(TOKENS.ingestA);
    const written = await ingest.unary(EventService.method.writeEvents, { events: [{ eventType: 'tenant.test', source: 'tenant-src', severity: Severity.INFO, tenantId: 'b' }] });
    await ingest.unary(TraceService.method.export, traceRequest('tenant-svc', 2));
    const asA = await client(TOKENS.queryA).unary(QueryService.method.listEvents, { sources: ['tenant-src'], tenantId: 'b' });
    expect(asA.events.map((e) => [e.id, e.tenantId])).toEqual([[written.ids[0], 'a']]);
    const asB = await client(TOKENS.queryB).unary(QueryService.method.listEvents, { sources: ['tenant-src'] });
    expect(asB.events).toEqual([]);
    const summaryA = await client(TOKENS.queryA).unary(QueryService.method.getSummary, {});
    const summaryB = await client(TOKENS.queryB).unary(QueryService.method.getSummary, {});
    expect(summaryA.services.find((s) => s.serviceName === 'tenant-svc')?.spans).toBe(2n);
    expect(summaryB.services.find((s) => s.serviceName === 'tenant-svc')).toBeUndefined();
    const rows = await t.agent.storage.transport.query<{ tenant: string }>("SELECT ResourceAttributes['tenant.id'] AS tenant FROM otel_traces WHERE ServiceName = 'tenant-svc'");
    expect(rows.map((r) => r.tenant)).toEqual(['a', 'a']);
  });

  it('never logs a token', () => {
    const text = JSON.stringify(t.logs);
    for (const token of Object.values(TOKENS)) expect(text).not.toContain(token);
  });
});

describe('auth configuration', () => {
  it('refuses auth off with a non-loopback listener, naming both ways out', () => {
    expect(() => validateConfig({ server: { grpc: { address: '0.0.0.0:4317' } } })).toThrow(
      /auth\.enabled.*server\.grpc\.address \(0\.0\.0\.0:4317\) is not loopback: either turn auth on .* or bind every listener to loopback/,
    );
    expect(() => validateConfig({ auth: { enabled: true } })).toThrow(/auth\.tokens.*needs at least one token/);
    expect(() => validateConfig({ auth: { enabled: true, tokens: [{ name: 'x', token: 'short', scopes: ['query'] }] } })).toThrow(/at least 16 characters/);
    expect(validateConfig({}).auth.enabled).toBe(false);
  });
});
