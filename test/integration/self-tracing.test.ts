import { createAuthenticator } from '../../src/auth/auth.js';
import { validateConfig } from '../../src/config/load.js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TraceService, type ExportTraceServiceRequest } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema } from '../../src/gen/grpc/health/v1/health_pb.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { createGrpcServer, type GrpcServer } from '../../src/server/grpc.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { testClient } from '../support/grpc-client.js';
import { silentLogger } from '../support/temp.js';

describe('self-tracing', () => {
  const received: ExportTraceServiceRequest[] = [];
  let collector: GrpcServer;
  let t: TestAgent;

  beforeAll(async () => {
    // A second gRPC server that decodes what the real OTLP exporter sends.
    collector = createGrpcServer({ config: { ...validateConfig({}).server.grpc, address: '127.0.0.1:0', max_recv_msg_size: 4 << 20 }, logger: silentLogger(), metrics: new Registry(), health: createHealthRegistry(), auth: createAuthenticator({ enabled: false, tokens: [] }, { logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() }) });
    collector.addService(TraceService, {
      async export(req) {
        received.push(req);
        return {};
      },
    });
    await collector.start();
    t = await startTestAgent({ telemetry: { tracing: { enabled: true, endpoint: `http://127.0.0.1:${collector.port}` } } });
  });
  afterAll(async () => collector.shutdown());

  it('exports a span per gRPC call and HTTP request over OTLP, with the correlation id', async () => {
    const c = testClient(Health, t.grpcAddress);
    await c.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' }, { 'x-correlation-id': 'trace-me' });
    c.close();
    await fetch(`${t.adminUrl}/status`, { headers: { 'x-correlation-id': 'trace-me-too' } });
    await t.stop(); // flushes the batch span processor
    const spans = received.flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ s, resource: rs.resource })))));
    const attr = (kv: Array<{ key: string; value?: { value: { case?: string; value?: unknown } } }> | undefined, key: string) => kv?.find((a) => a.key === key)?.value?.value.value;
    const grpcSpan = spans.find(({ s }) => s.name === 'grpc.health.v1.Health/Check');
    expect(grpcSpan).toBeDefined();
    expect(attr(grpcSpan?.s.attributes, 'heimdall.correlation_id')).toBe('trace-me');
    expect(attr(grpcSpan?.s.attributes, 'rpc.system')).toBe('grpc');
    expect(attr(grpcSpan?.resource?.attributes, 'service.name')).toBe('heimdall');
    expect(grpcSpan?.s.traceId.length).toBe(16);
    const httpSpan = spans.find(({ s }) => s.name === 'GET /status');
    expect(attr(httpSpan?.s.attributes, 'heimdall.correlation_id')).toBe('trace-me-too');
  });
});
