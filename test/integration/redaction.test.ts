/**
 * Nothing a tenant sent (or a secret in the agent's own configuration) appears on the open
 * endpoints (/metrics, /livez, /readyz) or in the agent's own events: span names, service names and
 * status messages are redacted on both the wire fast path and the decode path, and http-check
 * text hides URL passwords and secret query values.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { toJson } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { JobService, JobStatus, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { EventSchema } from '../../src/gen/heimdall/v1/events_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { exporters, testResource } from '../support/otel-clients.js';
import { until } from '../support/wait.js';

describe('redaction of what reaches open endpoints and the agent events', () => {
  let t: TestAgent;
  let c: AgentClient;
  let probe: Server;
  let probeUrl: string;
  beforeAll(async () => {
    t = await startTestAgent({ ingest: { batch: { max_delay: '20ms' } }, jobs: { system_check: { enabled: false } } });
    c = connect({ addr: t.grpcAddress });
    probe = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    c.close();
    probe.close();
    await t.stop();
  });

  /** Text of the endpoints anyone who reaches the admin port can read. */
  const openEndpoints = async () => (await Promise.all(['/metrics', '/livez', '/readyz'].map(async (p) => (await fetch(`${t.adminUrl}${p}`)).text()))).join('\n');

  it.each(['grpc', 'http/json', 'http/protobuf'] as const)('redacts span names, service names and status messages sent over %s, in storage and in the RED metric labels', async (transport) => {
    const tag = transport.replace('/', '-');
    const secrets = [`sk_live_${tag}_0123456789`, `hunter2-${tag}-pw`, `bearer${tag.replace('-', '')}abcdefghijklmnop`];
    const { traces } = exporters(transport, t.grpcAddress, t.otlpHttpUrl);
    const provider = new BasicTracerProvider({ resource: testResource(`svc-${tag} https://deploy:${secrets[1]}@registry`), spanProcessors: [new SimpleSpanProcessor(traces)] });
    const span = provider.getTracer('redaction').startSpan(`GET /login?user=ada&api_key=${secrets[0]}`, { kind: SpanKind.SERVER });
    span.setStatus({ code: SpanStatusCode.ERROR, message: `denied: Bearer ${secrets[2]}` });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();

    const rows = await until(async () => {
      const r = await t.agent.storage.transport.query<{ SpanName: string; ServiceName: string; StatusMessage: string }>(
        'SELECT SpanName, ServiceName, StatusMessage FROM otel_traces WHERE ServiceName LIKE {p:String}',
        { p: `svc-${tag} %` },
      );
      return r.length > 0 ? r : undefined;
    }, 10_000, 'the span stored');
    expect(rows).toEqual([{ SpanName: 'GET /login?user=ada&api_key=[REDACTED]', ServiceName: `svc-${tag} https://deploy:[REDACTED]@registry`, StatusMessage: 'denied: Bearer [REDACTED]' }]);
    const open = await openEndpoints();
    expect(open).toContain(`span_name="GET /login?user=ada&api_key=[REDACTED]"`);
    for (const s of secrets) expect(open).not.toContain(s);
  });

  it('hides URL passwords and secret query values in http-check runs, events and logs', async () => {
    const querySecret = 'sk_live_query_secret_42';
    const password = 'pa55-word-in-url';
    const ok = (await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: `${probeUrl}/health?x=1&api_key=${querySecret}` } })).job as Job;
    const withPassword = (await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: `http://probe:${password}@127.0.0.1:${new URL(probeUrl).port}/health` } })).job as Job;
    const done = async (job: Job) => until(async () => {
      const j = (await c.unary(JobService.method.getJob, { id: job.id })).job;
      return j && [JobStatus.SUCCEEDED, JobStatus.FAILED].includes(j.status) ? j : undefined;
    }, 15_000, 'the http-check run');
    const okRun = await done(ok);
    const credentialRun = await done(withPassword);
    expect(okRun.status).toBe(JobStatus.SUCCEEDED);
    expect(okRun.message).toContain(`/health?x=1&api_key=[REDACTED] answered 200`);
    // The credentials go to the server as Basic auth; the run's text does not show them.
    expect(credentialRun.status).toBe(JobStatus.SUCCEEDED);
    expect(credentialRun.message).toContain('http://probe:[REDACTED]@127.0.0.1');

    for (const run of [okRun, credentialRun]) {
      const events = await until(async () => {
        const e = (await c.unary(QueryService.method.listEvents, { correlationId: run.correlationId, pageSize: 100 })).events;
        return e.some((x) => x.eventType === 'http-check.result') && e.some((x) => x.eventType.startsWith('job.run.') && x.eventType !== 'job.run.started') ? e : undefined;
      }, 10_000, 'the run events');
      const text = JSON.stringify(events.map((e) => toJson(EventSchema, e)));
      expect(text).toContain('[REDACTED]');
      expect(text).not.toContain(querySecret);
      expect(text).not.toContain(password);
      // The run's own text (its parameters are the job's definition, shown to admins as given).
      const runText = JSON.stringify([run.message, run.error, run.result ?? null]);
      expect(runText).not.toContain(querySecret);
      expect(runText).not.toContain(password);
    }
    const logs = JSON.stringify(t.logs);
    expect(logs).not.toContain(querySecret);
    expect(logs).not.toContain(password);
    const open = await openEndpoints();
    expect(open).not.toContain(querySecret);
    expect(open).not.toContain(password);
  });
});
