/**
 * /metrics under hostile clients, in-process agent, real clients: span metrics filling their
 * family never cost the rate-limit metrics theirs, readers that stop reading do not lock
 * Prometheus out, probes answer while a large family renders, and /metrics can require a token.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { testResource } from '../support/otel-clients.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

/** Exports `n` spans with unique names of about 128 bytes (and a long service name) through the real OTLP/gRPC exporter. */
async function longSpanNames(t: TestAgent, n: number): Promise<void> {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: testResource(`svc-${'y'.repeat(124)}`), spanProcessors: [new SimpleSpanProcessor(memory)] });
  const tracer = provider.getTracer('fill');
  for (let i = 0; i < n; i++) tracer.startSpan(`op-${i}-`.padEnd(128, 'x')).end();
  const spans = memory.getFinishedSpans();
  // A generous deadline: a slow answer is not what these tests are about.
  const exporter = new OTLPTraceExporter({ url: `http://${t.grpcAddress}`, timeoutMillis: 120_000 });
  for (let i = 0; i < spans.length; i += 500) {
    await new Promise<void>((resolve, reject) => exporter.export(spans.slice(i, i + 500), (r: ExportResult) => (r.code === ExportResultCode.SUCCESS ? resolve() : reject(r.error ?? new Error('export failed')))));
  }
  await exporter.shutdown();
}

/** Asks for /metrics from `from` and never reads the answer. */
async function stalledScrape(port: number, from: string): Promise<Socket> {
  const socket = netConnect({ port, host: '127.0.0.1', localAddress: from });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause();
  socket.write('GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
  return socket;
}

/** The status of a GET from 127.0.0.1, or 0 when the connection fails. */
const status = (url: string, headers: Record<string, string> = {}): Promise<number> =>
  new Promise((resolve) => {
    const req = request(url, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });

describe('metric families and /metrics scrapes under hostile clients', () => {
  const dir = tempDir();
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    writeFileSync(
      join(dir.path, 'fam.yaml'),
      ['domain: fam', 'descriptors:', '  - key: plan', '    rate_limit: { unit: second, requests_per_unit: 1000000 }', '  - key: user', '    detailed_metric: true', '    rate_limit: { unit: second, requests_per_unit: 1000000 }'].join('\n'),
    );
    t = await startTestAgent({
      log: { level: 'info' },
      ratelimit: { config_path: dir.path },
      jobs: { system_check: { enabled: false } },
      telemetry: { metrics: { max_series: 3, max_scrapes: 2, scrape_timeout: '60s', stall_timeout: '1s' } },
    });
    c = connect({ addr: t.grpcAddress });
  }, 60_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    dir.cleanup();
  });
  const scrape = async () => (await fetch(`${t.adminUrl}/metrics`)).text();

  it('span metrics filling their family leave the rate-limit families theirs: a configured limit is always named, request values past the cap overflow', async () => {
    // 2000 label sets of long names: the RED family at its cap (ingest.red_metrics.max_series).
    await longSpanNames(t, 2_000);
    const check = (key: string, value: string) => c.unary(RateLimitService.method.shouldRateLimit, { domain: 'fam', descriptors: [{ entries: [{ key, value }] }] });
    for (let i = 0; i < 5; i++) await check('user', `u${i}`);
    await check('plan', 'gold');
    const text = await scrape();
    expect(sample(text, 'heimdall_ratelimit_total_hits_total{domain="fam",descriptor="fam.plan"}')).toBe(1);
    // Request values take the cap (3 here): the first three kept, the rest counted as overflow.
    for (let i = 0; i < 3; i++) expect(sample(text, `heimdall_ratelimit_total_hits_total{domain="fam",descriptor="fam.user|user_u${i}"}`)).toBe(1);
    expect(sample(text, 'heimdall_ratelimit_total_hits_total{domain="__overflow__",descriptor="__overflow__"}')).toBe(2);
    // Every span label set kept: the family's own budget holds its cap at these lengths.
    const spanSets = text.split('\n').filter((l) => l.startsWith('heimdall_spans_total{service_name="svc-'));
    expect(spanSets).toHaveLength(2_000);
    expect(sample(text, 'heimdall_spans_total{service_name="__overflow__",span_name="__overflow__",span_kind="__overflow__",status_code="__overflow__"}') ?? 0).toBe(0);
    expect(text).not.toMatch(/^heimdall_metrics_overflow_total\{family="heimdall_spans_total",reason="size"\} [1-9]/m);
    expect(sample(text, 'heimdall_metrics_series_bytes{family="heimdall_spans_total"}')).toBeGreaterThan(0);
    console.log(`metrics families: /metrics ${(Buffer.byteLength(text) / 1024 / 1024).toFixed(1)} MiB with 2000 RED label sets of 128-byte names`);
  }, 120_000);

  it('answers /livez while /metrics renders its largest family', async () => {
    // Probes sent one after another all through a few scrapes of the text above (about 12 MiB).
    const latencies: number[] = [];
    let scraping = true;
    const prober = (async () => {
      while (scraping) {
        const t0 = performance.now();
        expect(await status(`${t.adminUrl}/livez`)).toBe(200);
        latencies.push(performance.now() - t0);
      }
    })();
    const renders: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await scrape();
      renders.push(performance.now() - t0);
    }
    scraping = false;
    await prober;
    latencies.sort((a, b) => a - b);
    // Many probes answered during each scrape (a probe waits at most one slice, not a family).
    expect(latencies.length).toBeGreaterThan(3 * 5);
    console.log(`metrics families: scrape ${Math.max(...renders).toFixed(0)} ms at most; /livez during scrapes: ${latencies.length} probes, median ${latencies[latencies.length >> 1]?.toFixed(1)} ms, slowest ${latencies.at(-1)?.toFixed(1)} ms`);
  }, 120_000);

  it('readers that stop reading hold their slots for stall_timeout at most: a real scrape gets through', async () => {
    const held = [await stalledScrape(t.agent.admin.port, '127.0.0.10'), await stalledScrape(t.agent.admin.port, '127.0.0.11')];
    try {
      await until(async () => (await t.agent.metrics.getSingleMetricAsString('heimdall_metrics_scrapes_in_flight')).includes('heimdall_metrics_scrapes_in_flight 2'), 30_000, 'both slots held');
      // Both slots taken: Prometheus is refused now...
      expect(await status(`${t.adminUrl}/metrics`)).toBe(503);
      // ...and served once the readers that took nothing for stall_timeout (1 s) are cut, long before scrape_timeout (60 s).
      await until(async () => (await status(`${t.adminUrl}/metrics`)) === 200, 20_000, 'a scrape served');
      const text = await scrape();
      expect(sample(text, 'heimdall_metrics_scrapes_refused_total{reason="stalled"}')).toBeGreaterThanOrEqual(2);
    } finally {
      for (const s of held) s.destroy();
    }
  }, 60_000);
});

describe('/metrics behind a token (telemetry.metrics.scope)', () => {
  const TOKENS = { query: 'query-token-for-metrics-01', ingest: 'ingest-token-for-metrics-1' };
  let t: TestAgent;
  beforeAll(async () => {
    t = await startTestAgent({
      auth: { enabled: true, tokens: [{ name: 'scraper', token: TOKENS.query, scopes: ['query'] }, { name: 'sender', token: TOKENS.ingest, scopes: ['ingest'] }] },
      jobs: { system_check: { enabled: false } },
      telemetry: { metrics: { scope: 'query' } },
    });
  }, 60_000);
  afterAll(async () => {
    await t.stop();
  });

  it('refuses scrapes without a token with the scope; probes stay open', async () => {
    expect(await status(`${t.adminUrl}/metrics`)).toBe(401);
    expect(await status(`${t.adminUrl}/metrics`, { authorization: `Bearer ${TOKENS.ingest}` })).toBe(403);
    expect(await status(`${t.adminUrl}/metrics`, { authorization: `Bearer ${TOKENS.query}` })).toBe(200);
    expect(await status(`${t.adminUrl}/livez`)).toBe(200);
    expect(await status(`${t.adminUrl}/readyz`)).toBe(200);
  });
});
