import { connect as connectTcp } from 'node:net';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Serving, HealthListRequestSchema, HealthListResponseSchema, type HealthCheckResponse } from '../../src/gen/grpc/health/v1/health_pb.js';
import { ServerReflection, type ServerReflectionRequestSchema, type ServerReflectionResponse, type ServerReflectionResponseSchema } from '../../src/gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1Alpha } from '../../src/gen/grpc/reflection/v1alpha/reflection_pb.js';
import { ComponentState, GetStatusRequestSchema, GetStatusResponseSchema, OverallStatus, ReadinessGate, SystemService } from '../../src/gen/heimdall/v1/system_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary, promtoolCheck } from '../support/binaries.js';
import { testClient } from '../support/grpc-client.js';
import { tempDir } from '../support/temp.js';

describe('agent on embedded storage', () => {
  let t: TestAgent;
  beforeAll(async () => {
    t = await startTestAgent();
  });
  afterAll(async () => t.stop());

  it('is live and ready, with every component reported', async () => {
    expect((await fetch(`${t.adminUrl}/livez`)).status).toBe(200);
    const ready = await fetch(`${t.adminUrl}/readyz`);
    const body = (await ready.json()) as { status: string; components: Array<{ name: string; state: string }> };
    expect(ready.status).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.components.map((c) => [c.name, c.state])).toEqual([
      ['config', 'ready'],
      ['storage', 'ready'],
      ['auth', 'ready'],
      ['grpc', 'ready'],
      ['otlp_http', 'ready'],
      ['pipeline', 'ready'],
      ['admin', 'ready'],
      ['security', 'ready'],
      ['ratelimit', 'ready'],
      ['scheduler', 'ready'],
      ['system-check', 'ready'],
    ]);
  });

  it('serves /status with version, uptime, config hash and components', async () => {
    const s = (await (await fetch(`${t.adminUrl}/status`)).json()) as Record<string, unknown>;
    expect(s.version).toBe('0.1.0');
    expect(s).toMatchObject({ ready: true, strictReady: true, status: 'ok', reasons: [], degraded: [] });
    expect(s.configHash).toMatch(/^[0-9a-f]{64}$/);
    expect(s.uptimeSeconds).toBeGreaterThan(0);
    expect((s.components as unknown[]).length).toBe(11);
  });

  it('answers 404 for unknown paths and 405 for wrong methods', async () => {
    expect((await fetch(`${t.adminUrl}/nope`)).status).toBe(404);
    const res = await fetch(`${t.adminUrl}/readyz`, { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });

  it('grpc.health.v1 Check: SERVING for the agent, each component and each hosted service; NOT_FOUND otherwise', async () => {
    const c = testClient(Health, t.grpcAddress);
    const check = async (service: string) => (await c.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service })).reply.status;
    expect(await check('')).toBe(Serving.SERVING);
    expect(await check('storage')).toBe(Serving.SERVING);
    expect(await check('grpc.health.v1.Health')).toBe(Serving.SERVING);
    expect(await check('heimdall.v1.SystemService')).toBe(Serving.SERVING);
    const err = (await check('no.such.Service').catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(grpcStatus.NOT_FOUND);
    const list = (await c.unary('List', HealthListRequestSchema, HealthListResponseSchema, {})).reply;
    expect(list.statuses['']?.status).toBe(Serving.SERVING);
    expect(list.statuses.storage?.status).toBe(Serving.SERVING);
    c.close();
  });

  it('returns the correlation id in gRPC metadata and HTTP headers, and logs it', async () => {
    const c = testClient(Health, t.grpcAddress);
    const { headers } = await c.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' }, { 'x-correlation-id': 'corr-grpc-1' });
    expect(headers.get('x-correlation-id')).toEqual(['corr-grpc-1']);
    const generated = await c.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' });
    expect(String(generated.headers.get('x-correlation-id')[0])).toMatch(/^[0-9a-f-]{36}$/);
    c.close();
    const res = await fetch(`${t.adminUrl}/livez`, { headers: { 'x-correlation-id': 'corr-http-1' } });
    expect(res.headers.get('x-correlation-id')).toBe('corr-http-1');
    await new Promise((r) => setTimeout(r, 50));
    expect(t.logs.some((l) => l.correlation_id === 'corr-grpc-1' && l.msg === 'gRPC call')).toBe(true);
    expect(t.logs.some((l) => l.correlation_id === 'corr-http-1' && l.msg === 'HTTP request' && l.component === 'admin')).toBe(true);
  });

  it('SystemService/GetStatus carries the same data as /status', async () => {
    const c = testClient(SystemService, t.grpcAddress);
    const { reply } = await c.unary('GetStatus', GetStatusRequestSchema, GetStatusResponseSchema, {});
    const http = (await (await fetch(`${t.adminUrl}/status`)).json()) as { configHash: string; version: string };
    expect(reply.version).toBe(http.version);
    expect(reply.configHash).toBe(http.configHash);
    expect(reply.ready).toBe(true);
    expect(reply.strictReady).toBe(true);
    expect(reply.status).toBe(OverallStatus.OK);
    expect(reply.components.find((x) => x.name === 'storage')).toMatchObject({ state: ComponentState.READY, gate: ReadinessGate.STRICT });
    expect(reply.components.find((x) => x.name === 'grpc')?.gate).toBe(ReadinessGate.POD);
    c.close();
  });

  it('serves gRPC reflection (v1 and v1alpha): list services and resolve a symbol to its files', async () => {
    for (const service of [ServerReflection, ServerReflectionV1Alpha as unknown as typeof ServerReflection]) {
      const c = testClient(service, t.grpcAddress);
      const stream = c.bidi<typeof ServerReflectionRequestSchema, typeof ServerReflectionResponseSchema>('ServerReflectionInfo');
      const replies: ServerReflectionResponse[] = [];
      stream.on('data', (r: ServerReflectionResponse) => replies.push(r));
      const done = new Promise((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      stream.write({ messageRequest: { case: 'listServices', value: '' } });
      stream.write({ messageRequest: { case: 'fileContainingSymbol', value: 'heimdall.v1.SystemService' } });
      stream.write({ messageRequest: { case: 'fileContainingSymbol', value: 'heimdall.v1.SystemService.GetStatus' } });
      stream.write({ messageRequest: { case: 'fileByFilename', value: 'grpc/health/v1/health.proto' } });
      stream.write({ messageRequest: { case: 'fileContainingSymbol', value: 'no.such.Thing' } });
      stream.end();
      await done;
      const [list, sym, method, file, missing] = replies;
      expect(list?.messageResponse.case === 'listServicesResponse' && list.messageResponse.value.service.map((s) => s.name)).toEqual([
        'opentelemetry.proto.collector.trace.v1.TraceService',
        'opentelemetry.proto.collector.logs.v1.LogsService',
        'opentelemetry.proto.collector.metrics.v1.MetricsService',
        'heimdall.v1.EventService',
        'heimdall.v1.QueryService',
        'heimdall.v1.SecurityService',
        'envoy.service.ratelimit.v3.RateLimitService',
        'heimdall.v1.JobService',
        'grpc.health.v1.Health',
        'heimdall.v1.SystemService',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
      ]);
      const names = (r: ServerReflectionResponse | undefined) =>
        r?.messageResponse.case === 'fileDescriptorResponse' ? r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) : [];
      expect(names(sym)).toEqual(['heimdall/v1/system.proto', 'google/protobuf/timestamp.proto']);
      expect(names(method)).toEqual(names(sym));
      expect(names(file)).toEqual(['grpc/health/v1/health.proto']);
      expect(missing?.messageResponse.case).toBe('errorResponse');
      c.close();
    }
  });

  it('exposes /metrics that promtool accepts, with build info and the heimdall_ prefix', async () => {
    const hc = testClient(Health, t.grpcAddress);
    await hc.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' });
    hc.close();
    const res = await fetch(`${t.adminUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^heimdall_build_info\{version="0\.1\.0",build="[^"]+",node_version="v\d+[^"]*"\} 1$/m);
    expect(text).toMatch(/^heimdall_process_cpu_seconds_total /m);
    expect(text).toMatch(/^heimdall_component_state\{component="storage",state="ready"\} 1$/m);
    expect(text).toMatch(/^heimdall_grpc_server_handled_total\{grpc_service="grpc\.health\.v1\.Health",grpc_method="Check",grpc_code="OK"\} \d+$/m);
    const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? '');
    expect(names.every((n) => n.startsWith('heimdall_'))).toBe(true);
    // promtool exits non-zero and prints the problems when the exposition is not valid or lints fail.
    if (haveBinary('promtool')) expect(promtoolCheck(text)).toBe('exit=0');
  });

  it('ends a stream whose request is malformed with INVALID_ARGUMENT (no hang)', async () => {
    const c = testClient(ServerReflection, t.grpcAddress);
    const call = c.raw.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b);
    const err = await new Promise<ServiceError>((resolve) => {
      call.on('error', (e: ServiceError) => resolve(e));
      call.on('data', () => undefined);
      call.write(Buffer.from([0x22, 0xff, 0xff]));
    });
    expect(err.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(err.details).toContain('grpc.reflection.v1.ServerReflectionRequest');
    c.close();
  });

  it('answers malformed protobuf with INVALID_ARGUMENT and keeps serving', async () => {
    const c = testClient(Health, t.grpcAddress);
    const err = await new Promise<ServiceError>((resolve) => {
      c.raw.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff, 0xff]), (e) => resolve(e as ServiceError));
    });
    expect(err.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(err.details).toContain('grpc.health.v1.HealthCheckRequest');
    expect((await c.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' })).reply.status).toBe(Serving.SERVING);
    c.close();
  });
});

describe('agent lifecycle', () => {
  it('while it starts, /readyz answers 503 until both data listeners accept connections (the startup probe waits on it)', async () => {
    const t = await startTestAgent({}, { start: false });
    const started = t.agent.start();
    const accepts = (port: number) => new Promise<boolean>((resolve) => {
      const s = connectTcp(port, '127.0.0.1', () => (s.destroy(), resolve(true))).once('error', () => resolve(false));
    });
    const seen: number[] = [];
    for (let i = 0; i < 400; i++) {
      const status = t.agent.admin.port ? (await fetch(`${t.adminUrl}/readyz`).catch(() => undefined))?.status : undefined;
      if (status) seen.push(status);
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(seen.at(-1)).toBe(200);
    expect(t.agent.grpc.port).toBeGreaterThan(0);
    expect(await accepts(t.agent.grpc.port)).toBe(true);
    expect(await accepts(t.agent.otlpHttp.port)).toBe(true);
    await started;
    await t.stop();
  });

  it('Watch streams SERVING, then NOT_SERVING when shutdown begins, and readiness turns 503', async () => {
    const t = await startTestAgent({ shutdown: { drain: '300ms' } });
    const c = testClient(Health, t.grpcAddress);
    const stream = c.serverStream<typeof HealthCheckResponseSchema>('Watch', { service: '' });
    const seen: Serving[] = [];
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (r: HealthCheckResponse) => seen.push(r.status));
      stream.on('end', resolve);
      stream.on('error', () => resolve());
    });
    await expect.poll(() => seen).toEqual([Serving.SERVING]);
    const stopping = t.agent.shutdown();
    await expect.poll(() => seen).toEqual([Serving.SERVING, Serving.NOT_SERVING]);
    const during = await fetch(`${t.adminUrl}/readyz`);
    expect(during.status).toBe(503);
    expect(((await during.json()) as { reasons: string[] }).reasons).toContain('agent: shutting down');
    await stopping;
    await ended;
    c.close();
    await t.stop();
  });

  it('starts while ClickHouse is down: ready for its local clients, degraded in /status and /readyz/strict, strictly ready when it returns', async () => {
    const { startClickHouseHttp } = await import('../support/clickhouse-http.js');
    const dir = tempDir();
    const ch = await startClickHouseHttp(dir.path);
    await ch.down();
    const t = await startTestAgent({
      storage: { clickhouse: { url: ch.url }, retry: { initial_interval: '100ms', max_interval: '200ms' } },
      // The system check gates strict readiness too: run each second, so a score taken during the outage
      // (a tick at :00 or :30 by default) is not kept for 30 s after storage is back.
      jobs: { system_check: { schedule: '* * * * * *' } },
    });
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
    const res = await fetch(`${t.adminUrl}/readyz/strict`);
    expect(res.status).toBe(503);
    // The open probe names the component and its state; the backend's error text is for /status (scope admin) only.
    const text = await res.text();
    expect((JSON.parse(text) as { reasons: string[] }).reasons).toContain('storage: failed');
    expect(text).not.toMatch(/ECONNREFUSED|ping|127\.0\.0\.1:\d+/);
    const status = (await (await fetch(`${t.adminUrl}/status`)).json()) as { status: string; ready: boolean; strictReady: boolean; degraded: string[] };
    expect(status).toMatchObject({ status: 'degraded', ready: true, strictReady: false });
    expect(status.degraded.join(' ')).toMatch(/^storage: failed \(server storage at http:\/\/127\.0\.0\.1:\d+\/default is not available: ping: .*ECONNREFUSED/);
    const hc = testClient(Health, t.grpcAddress);
    expect((await hc.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' })).reply.status).toBe(Serving.SERVING);
    expect((await hc.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: 'storage' })).reply.status).toBe(Serving.NOT_SERVING);
    expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toMatch(/^heimdall_ready\{probe="strict"\} 0$/m);
    expect(t.logs.some((l) => l.component === 'health' && l.level === 'warn' && String(l.msg).startsWith('health: degraded (still serving local clients): storage: failed'))).toBe(true);
    await ch.up();
    // Reconnecting takes a retry (200 ms at most), then the migrations, slower on a loaded CI machine.
    // Polled on the reasons, so that a failure names the component still not ready.
    await expect.poll(async () => ((await (await fetch(`${t.adminUrl}/readyz/strict`)).json()) as { reasons?: string[] }).reasons ?? [], { timeout: 30_000 }).toEqual([]);
    expect((await fetch(`${t.adminUrl}/readyz/strict`)).status).toBe(200);
    const tables = await t.agent.storage.transport.query<{ c: string }>("SELECT count() AS c FROM system.tables WHERE name LIKE 'otel_%'");
    expect(Number(tables[0]?.c)).toBe(9);
    hc.close();
    await t.stop();
    await ch.close();
    dir.cleanup();
  }, 60_000);
});
