/**
 * The heimdall.v1 services over Connect on the admin port: plain fetch with JSON (as curl does),
 * typed Connect clients (JSON and binary) over HTTP/1.1, a server stream, tokens, scopes and
 * tenants, and the error mapping, side by side with the same calls on gRPC.
 */
import { gzipSync } from 'node:zlib';
import { fromBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client, type Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { BadRequestSchema } from '../../src/gen/google/rpc/error_details_pb.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { JobService, JobStatus, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { SecurityService, SecurityMode } from '../../src/gen/heimdall/v1/security_pb.js';
import { GetStatusResponseSchema, SystemService } from '../../src/gen/heimdall/v1/system_pb.js';
import { TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { ADMIN_MAX_BODY_BYTES } from '../../src/server/body.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';

const TOKENS = {
  queryA: 'query-token-tenant-a-00001',
  queryB: 'query-token-tenant-b-00001',
  ingestA: 'ingest-token-tenant-a-0001',
  admin: 'admin-token-000000000001',
  everything: 'all-scopes-token-0000001',
};

/** The Connect error a call ends with (fails the test when it succeeds). */
async function connectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('the call succeeded');
}

/** The gRPC error a call ends with. */
async function grpcError(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('the call succeeded');
}

describe('Connect API on the admin port', () => {
  let t: TestAgent;
  const exports = tempDir();
  beforeAll(async () => {
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'query-a', token: TOKENS.queryA, scopes: ['query'], tenant: 'a' },
          { name: 'query-b', token: TOKENS.queryB, scopes: ['query'], tenant: 'b' },
          { name: 'ingest-a', token: TOKENS.ingestA, scopes: ['ingest'], tenant: 'a' },
          { name: 'admin', token: TOKENS.admin, scopes: ['admin'] },
          { name: 'everything', token: TOKENS.everything, scopes: ['ingest', 'query', 'admin', 'ratelimit'] },
        ],
      },
      jobs: { export_dir: exports.path },
    });
  }, 120_000);
  afterAll(async () => {
    await t.stop();
    exports.cleanup();
  });

  const transport = (token: string | undefined, useBinaryFormat = false): Transport =>
    createConnectTransport({
      baseUrl: t.adminUrl,
      httpVersion: '1.1',
      useBinaryFormat,
      interceptors: [(next) => (req) => (token && req.header.set('authorization', `Bearer ${token}`), next(req))],
    });
  const post = (path: string, body: string | Uint8Array, headers: Record<string, string>) => fetch(`${t.adminUrl}${path}`, { method: 'POST', body, headers });

  it('answers a plain JSON POST, as curl sends it, with the correlation id in and out', async () => {
    const res = await post('/heimdall.v1.QueryService/GetSummary', '{"since":"1h"}', { authorization: `Bearer ${TOKENS.everything}`, 'content-type': 'application/json', 'x-correlation-id': 'curl-1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-correlation-id')).toBe('curl-1');
    const body = (await res.json()) as { startTime: string; endTime: string };
    // `since` sets the window: one hour ending now (the default without it is 24 hours).
    expect(Date.parse(body.endTime) - Date.parse(body.startTime)).toBe(3_600_000);
    const headers = { authorization: `Bearer ${TOKENS.everything}`, 'content-type': 'application/json' };
    const bad = await post('/heimdall.v1.QueryService/GetSummary', '{"since":"an hour"}', headers);
    expect([bad.status, ((await bad.json()) as { message: string }).message]).toEqual([400, 'since: expected a duration such as 15m, 1h or 7d (units ms, s, m, h, d, w), got "an hour"']);
    const both = await post('/heimdall.v1.QueryService/ListLogs', '{"since":"1h","startTime":"2026-01-01T00:00:00Z"}', headers);
    expect([both.status, ((await both.json()) as { message: string }).message]).toEqual([400, 'since: give start_time or since, not both']);
    const wide = await post('/heimdall.v1.QueryService/ListEvents', '{"since":"400d"}', headers);
    expect(wide.status).toBe(400);
    const generated = await post('/heimdall.v1.SystemService/GetStatus', '{}', { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' });
    expect(generated.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
    // Counted like every admin route, one route per method.
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/heimdall_http_server_requests_total\{[^}]*route="\/heimdall\.v1\.QueryService\/GetSummary"[^}]*code="200"/);
  });

  it('serves each service to a typed client, in JSON and in binary', async () => {
    for (const binary of [false, true]) {
      const system = createClient(SystemService, transport(TOKENS.admin, binary));
      expect((await system.getStatus({})).version).not.toBe('');
      const query = createClient(QueryService, transport(TOKENS.everything, binary));
      expect((await query.listEvents({ pageSize: 5, sources: ['nobody'] })).events).toEqual([]);
      const events = createClient(EventService, transport(TOKENS.everything, binary));
      const written = await events.writeEvents({ events: [{ eventType: 'connect.test', source: `connect-${binary}`, severity: Severity.INFO, message: 'over Connect' }] });
      expect(written.accepted).toBe(1);
      expect(written.ids).toHaveLength(1);
      const jobs = createClient(JobService, transport(TOKENS.admin, binary));
      expect((await jobs.listScheduledJobs({})).jobs.map((j) => j.name)).toContain('system-check');
      const security = createClient(SecurityService, transport(TOKENS.admin, binary));
      expect((await security.getState({})).mode).toBe(SecurityMode.NORMAL);
    }
    // What WriteEvents stored over Connect reads back over gRPC.
    const listed = await connect({ addr: t.grpcAddress, token: TOKENS.everything }).unary(QueryService.method.listEvents, { sources: ['connect-false', 'connect-true'] });
    expect(listed.events.map((e) => e.message)).toEqual(['over Connect', 'over Connect']);
  });

  it('answers application/proto bodies from plain HTTP', async () => {
    const res = await post('/heimdall.v1.SystemService/GetStatus', new Uint8Array(), { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/proto' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/proto');
    expect(fromBinary(GetStatusResponseSchema, new Uint8Array(await res.arrayBuffer())).configHash).not.toBe('');
  });

  it("streams WatchJob: a job's progress to its end", async () => {
    const start = Date.now() - 3_600_000;
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_events (Timestamp, Id, EventType, Source, Severity, Message, Payload)
       SELECT fromUnixTimestamp64Milli(toInt64(${start} + number)), toString(number), 'bulk', 'connect-export', 2, 'row', '{}' FROM numbers(50000)`,
    );
    const jobs = createClient(JobService, transport(TOKENS.admin));
    const { job } = await jobs.submitJob({ kind: 'export', params: { source: 'events', filters: { source: 'connect-export' }, since: '2h', file: 'connect.jsonl', chunk_rows: 5_000 } });
    const seen: Job[] = [];
    for await (const m of jobs.watchJob({ id: job?.id ?? '' })) if (m.job) seen.push(m.job);
    const last = seen[seen.length - 1];
    expect(last?.status).toBe(JobStatus.SUCCEEDED);
    expect(last?.progress).toBe(100);
    const progress = seen.map((j) => j.progress);
    for (let i = 1; i < progress.length; i += 1) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1] as number);
    expect(seen.some((j) => j.status === JobStatus.RUNNING || j.status === JobStatus.PENDING)).toBe(true);
  }, 60_000);

  it('checks tokens as gRPC does: unauthenticated (401) without one, permission_denied (403) without the scope', async () => {
    const none = await post('/heimdall.v1.QueryService/GetSummary', '{}', { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'unauthenticated' });
    const query = (token?: string) => createClient(QueryService, transport(token)).getSummary({});
    const grpc = (token?: string) => connect({ addr: t.grpcAddress, token }).unary(QueryService.method.getSummary, {});
    for (const [token, connectCode, grpcCode] of [
      [undefined, Code.Unauthenticated, status.UNAUTHENTICATED],
      ['not-a-real-token-123456', Code.Unauthenticated, status.UNAUTHENTICATED],
      [TOKENS.admin, Code.PermissionDenied, status.PERMISSION_DENIED],
    ] as const) {
      const [c, g] = [await connectError(query(token)), await grpcError(grpc(token))];
      expect([c.code, g.code]).toEqual([connectCode, grpcCode]);
      expect(c.rawMessage).toBe(g.details);
    }
    const forbidden = await post('/heimdall.v1.SystemService/GetStatus', '{}', { authorization: `Bearer ${TOKENS.queryA}`, 'content-type': 'application/json' });
    expect(forbidden.status).toBe(403);
    // A server stream is refused the same way, before it starts.
    const watch = createClient(JobService, transport(TOKENS.queryA)).watchJob({ id: 'x' });
    expect((await connectError((async () => { for await (const _ of watch) void _; })())).code).toBe(Code.PermissionDenied);
  });

  it('holds a tenant-bound token to its tenant, as on gRPC', async () => {
    const ingest = connect({ addr: t.grpcAddress, token: TOKENS.ingestA });
    await ingest.unary(TraceService.method.export, traceRequest('connect-tenant-svc', 2));
    const summary = (token: string) => createClient(QueryService, transport(token)).getSummary({});
    const asA = await summary(TOKENS.queryA);
    expect(asA.services.find((s) => s.serviceName === 'connect-tenant-svc')?.spans).toBe(2n);
    const asB = await summary(TOKENS.queryB);
    expect(asB.services.find((s) => s.serviceName === 'connect-tenant-svc')).toBeUndefined();
    const events = createClient(EventService, transport(TOKENS.ingestA));
    const written = await events.writeEvents({ events: [{ eventType: 'tenant.test', source: 'connect-tenant-src', severity: Severity.INFO, tenantId: 'b' }] });
    const listed = await createClient(QueryService, transport(TOKENS.queryB)).listEvents({ sources: ['connect-tenant-src'], tenantId: 'a' });
    expect(listed.events).toEqual([]);
    const own = await createClient(QueryService, transport(TOKENS.queryA)).listEvents({ sources: ['connect-tenant-src'], tenantId: 'b' });
    expect(own.events.map((e) => [e.id, e.tenantId])).toEqual([[written.ids[0], 'a']]);
  });

  it('maps an invalid argument to invalid_argument with the message and field details of gRPC', async () => {
    const request = { events: [{ eventType: '', source: '', severity: Severity.INFO }] };
    const c = await connectError(createClient(EventService, transport(TOKENS.everything)).writeEvents(request));
    const g = await grpcError(connect({ addr: t.grpcAddress, token: TOKENS.everything }).unary(EventService.method.writeEvents, request));
    expect(g.code).toBe(status.INVALID_ARGUMENT);
    expect(c.code).toBe(Code.InvalidArgument);
    expect(c.rawMessage).toBe(g.details);
    const [details] = c.findDetails(BadRequestSchema);
    expect(details?.fieldViolations.map((v) => v.field)).toEqual(expect.arrayContaining(['events[0].event_type']));
    const res = await post('/heimdall.v1.EventService/WriteEvents', JSON.stringify({ events: [{ severity: 'SEVERITY_INFO' }] }), { authorization: `Bearer ${TOKENS.everything}`, 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'invalid_argument', message: g.details });
  });

  it('refuses malformed JSON with invalid_argument naming the problem', async () => {
    const headers = { authorization: `Bearer ${TOKENS.everything}`, 'content-type': 'application/json' };
    const broken = await post('/heimdall.v1.QueryService/GetSummary', '{"since":', headers);
    expect(broken.status).toBe(400);
    const body = (await broken.json()) as { code: string; message: string };
    expect(body.code).toBe('invalid_argument');
    expect(body.message).toMatch(/JSON/);
    const wrongType = await post('/heimdall.v1.QueryService/GetSummary', '{"top":"many"}', headers);
    expect(wrongType.status).toBe(400);
    expect(((await wrongType.json()) as { message: string }).message).toMatch(/top/);
  });

  it(`refuses a body over ${ADMIN_MAX_BODY_BYTES} bytes with resource_exhausted, also once inflated`, async () => {
    const headers = { authorization: `Bearer ${TOKENS.everything}`, 'content-type': 'application/json' };
    const big = JSON.stringify({ since: '1h', pad: 'x'.repeat(ADMIN_MAX_BODY_BYTES) });
    const res = await post('/heimdall.v1.QueryService/GetSummary', big, headers);
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: 'resource_exhausted' });
    const bomb = await post('/heimdall.v1.QueryService/GetSummary', gzipSync(big), { ...headers, 'content-encoding': 'gzip' });
    expect(bomb.status).toBe(429);
    // Just under the bound passes (unknown JSON fields are ignored).
    const fits = await post('/heimdall.v1.QueryService/GetSummary', JSON.stringify({ since: '1h', pad: 'x'.repeat(ADMIN_MAX_BODY_BYTES - 100) }), headers);
    expect(fits.status).toBe(200);
  });

  it('refuses the client stream StreamEvents with unimplemented, naming the gRPC port', async () => {
    const events: Client<typeof EventService> = createClient(EventService, transport(TOKENS.everything));
    async function* one() {
      yield { events: [{ eventType: 'x', source: 'y', severity: Severity.INFO }] };
    }
    const err = await connectError(events.streamEvents(one()));
    expect(err.code).toBe(Code.Unimplemented);
    expect(err.rawMessage).toBe('heimdall.v1.EventService/StreamEvents streams its requests, which the Connect API does not serve (browsers cannot stream a request body): call it on the gRPC port, or use a unary method');
  });

  it('keeps the admin routes and 404s as they were; no CORS', async () => {
    expect((await fetch(`${t.adminUrl}/heimdall.v1.QueryService/NoSuchMethod`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${t.adminUrl}/grpc.health.v1.Health/Check`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })).status).toBe(404);
    expect((await fetch(`${t.adminUrl}/opentelemetry.proto.collector.trace.v1.TraceService/Export`, { method: 'POST', body: '{}' })).status).toBe(404);
    const get = await fetch(`${t.adminUrl}/heimdall.v1.QueryService/GetSummary`);
    expect(get.status).toBe(405);
    for (const path of ['/livez', '/readyz', '/metrics']) expect((await fetch(`${t.adminUrl}${path}`)).status).toBe(200);
    const preflight = await fetch(`${t.adminUrl}/heimdall.v1.QueryService/GetSummary`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const res = await post('/heimdall.v1.SystemService/GetStatus', '{}', { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json', origin: 'http://evil.example' });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('unsupported content types are refused (415), the Connect protocol only', async () => {
    const res = await post('/heimdall.v1.SystemService/GetStatus', 'x', { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/grpc-web+proto' });
    expect(res.status).toBe(415);
  });
});
