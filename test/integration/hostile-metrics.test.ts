/**
 * A hostile client with one token: unique long span names through the real OTLP gRPC exporter and
 * unique long detailed_metric descriptor values through Envoy's RLS API. /metrics stays under its
 * bound and passes promtool, and /livez keeps answering, also while a /metrics response is held
 * open by a client that does not read it. The agent runs as its own process, as in production.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimitRequestSchema, RateLimitResponseSchema, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { startAgentProcess, type AgentProcess, writeAgentConfig } from '../support/agent-process.js';
import { haveBinary, promtoolCheck } from '../support/binaries.js';
import { testClient } from '../support/grpc-client.js';
import { testResource } from '../support/otel-clients.js';
import { tempDir } from '../support/temp.js';

/** telemetry.metrics.max_family_size's default: the bytes the client label sets of one family may take in /metrics. */
const MAX_FAMILY = 24 * 1024 * 1024;
/** telemetry.metrics.max_label_length's default (bytes). */
const MAX_LABEL = 128;
/** Unique span names and descriptor values the hostile client sends, each about 1 KB long. */
const SPANS = 4_000;
const DESCRIPTORS = 3_000;

/** Peak and current RSS of a process, from /proc (kB -> MiB). */
function rss(pid: number): { peakMiB: number; nowMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { peakMiB: Math.round(kb('VmHWM') / 1024), nowMiB: Math.round(kb('VmRSS') / 1024) };
}

/** Spans made by the real SDK, with unique names of about 1 KB. */
function hostileSpans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: testResource('hostile'), spanProcessors: [new SimpleSpanProcessor(memory)] });
  const tracer = provider.getTracer('hostile');
  for (let i = 0; i < SPANS; i++) tracer.startSpan(`GET /${i}/${'n'.repeat(1_000)}`).end();
  return memory.getFinishedSpans();
}

const exportBatch = (exporter: OTLPTraceExporter, spans: ReadableSpan[]) =>
  new Promise<void>((resolve, reject) => exporter.export(spans, (r: ExportResult) => (r.code === ExportResultCode.SUCCESS ? resolve() : reject(r.error ?? new Error('export failed')))));

describe('metrics under a hostile client', () => {
  const dir = tempDir();
  let agent: AgentProcess;
  let admin: string;
  beforeAll(async () => {
    const limits = join(dir.path, 'ratelimit.yaml');
    writeFileSync(limits, 'domain: hostile\ndescriptors:\n  - key: user\n    detailed_metric: true\n    rate_limit: { unit: second, requests_per_unit: 1000000 }\n');
    const config = writeAgentConfig(dir.path, { ratelimit: { config_path: limits }, jobs: { system_check: { enabled: false } } });
    agent = await startAgentProcess(config);
    admin = `http://127.0.0.1:${agent.ports.admin}`;
  }, 60_000);
  afterAll(async () => {
    await agent.stop();
    dir.cleanup();
  });

  const scrape = async () => {
    const t0 = performance.now();
    const res = await fetch(`${admin}/metrics`);
    const text = await res.text();
    return { status: res.status, text, bytes: Buffer.byteLength(text), ms: performance.now() - t0 };
  };

  it('keeps /metrics under its bound and valid, and /livez answering, under unique long span names and descriptor values', async () => {
    // /livez is asked all along; each answer's latency is kept.
    const livez: Array<{ status: number; ms: number }> = [];
    let loading = true;
    const prober = (async () => {
      while (loading) {
        const t0 = performance.now();
        const status = await fetch(`${admin}/livez`).then((r) => r.status, () => 0);
        livez.push({ status, ms: performance.now() - t0 });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const scrapes: Array<{ bytes: number; ms: number }> = [];
    const scraper = (async () => {
      while (loading) {
        const s = await scrape();
        scrapes.push({ bytes: s.bytes, ms: s.ms });
      }
    })();

    // Failed calls are counted, not thrown: the figures are reported either way.
    const failures: string[] = [];
    const fail = (err: unknown) => void failures.push((err as Error).message);
    const spans = hostileSpans();
    // A generous deadline: the agent is loaded on purpose, and a slow answer is not what this test is about.
    const exporter = new OTLPTraceExporter({ url: `http://${agent.addr}`, timeoutMillis: 120_000 });
    const sendSpans = (async () => {
      for (let i = 0; i < spans.length; i += 500) await exportBatch(exporter, spans.slice(i, i + 500)).catch(fail);
    })();
    const rls = testClient(RateLimitService, agent.addr);
    const sendDescriptors = (async () => {
      for (let i = 0; i < DESCRIPTORS; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            rls.unary('ShouldRateLimit', RateLimitRequestSchema, RateLimitResponseSchema, { domain: 'hostile', descriptors: [{ entries: [{ key: 'user', value: `${i + j}-${'v'.repeat(1_000)}` }] }] }).catch(fail),
          ),
        );
      }
    })();
    await Promise.all([sendSpans, sendDescriptors]);
    await exporter.shutdown();
    rls.close();
    loading = false;
    await Promise.all([prober, scraper]);
    // Paths never become labels: the route label is a registered route's path, or "unmatched".
    for (let i = 0; i < 50; i++) expect((await fetch(`${admin}/probe-${i}-${'p'.repeat(200)}?q=${i}`)).status).toBe(404);

    const last = await scrape();
    const family = (re: RegExp) => Buffer.byteLength(last.text.split('\n').filter((l) => re.test(l)).join('\n'));
    const red = family(/^heimdall_(spans_total|span_duration_seconds)/);
    const limits = family(/^heimdall_ratelimit_\w+_total\{domain/);
    const memory = rss(agent.child.pid ?? 0);
    const worst = Math.max(...livez.map((l) => l.ms));
    console.log(
      `hostile metrics: /metrics ${(last.bytes / 1024 / 1024).toFixed(2)} MiB rendered in ${last.ms.toFixed(0)} ms ` +
        `(RED ${(red / 1024 / 1024).toFixed(2)} MiB, rate-limit ${(limits / 1024 / 1024).toFixed(2)} MiB; largest while loading ${(Math.max(...scrapes.map((s) => s.bytes)) / 1024 / 1024).toFixed(2)} MiB, slowest ${Math.max(...scrapes.map((s) => s.ms)).toFixed(0)} ms, ${scrapes.length} scrapes); ` +
        `/livez ${livez.length} probes, slowest ${worst.toFixed(0)} ms; RSS peak ${memory.peakMiB} MiB, now ${memory.nowMiB} MiB; ${failures.length} calls failed`,
    );
    expect(failures).toEqual([]);

    expect(last.status).toBe(200);
    expect(red).toBeLessThanOrEqual(MAX_FAMILY);
    expect(limits).toBeLessThanOrEqual(MAX_FAMILY);
    expect(last.bytes).toBeLessThan(2 * MAX_FAMILY + 1024 * 1024);
    for (const s of scrapes) expect(s.bytes).toBeLessThan(2 * MAX_FAMILY + 1024 * 1024);
    // No label value past the length limit (bytes, as written); the cut ones end with the marker.
    const values = [...last.text.matchAll(/="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '');
    expect(values.filter((v) => Buffer.byteLength(v) > MAX_LABEL)).toEqual([]);
    expect(values.some((v) => Buffer.byteLength(v) === MAX_LABEL && v.endsWith('…'))).toBe(true);
    // The caps were reached: the rest is counted, not shown.
    expect(last.text).toMatch(/^heimdall_metrics_overflow_total\{family="heimdall_spans_total",reason="(series|size)"\} [1-9]/m);
    expect(last.text).toMatch(/^heimdall_spans_total\{service_name="__overflow__",/m);
    expect(last.text).toMatch(/^heimdall_ratelimit_total_hits_total\{domain="__overflow__",descriptor="__overflow__"\} [1-9]/m);
    expect(livez.every((l) => l.status === 200)).toBe(true);
    expect(last.text).toMatch(/^heimdall_http_server_requests_total\{server="admin",route="unmatched",method="GET",code="404"\} 50$/m);
    expect(last.text).not.toContain('probe-');
    if (haveBinary('promtool')) expect(promtoolCheck(last.text)).toBe('exit=0');
  }, 240_000);

  it('answers /livez while a /metrics response is held open by a client that does not read it', async () => {
    // From another address than the scrapes below (one response per client address at once).
    const stalled: Socket = tcpConnect({ port: agent.ports.admin ?? 0, host: '127.0.0.1', localAddress: '127.0.0.2' });
    stalled.on('error', () => undefined);
    await new Promise((resolve) => stalled.once('connect', resolve));
    stalled.pause();
    stalled.write('GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
    // The held response is in progress (counted with the scrape that reads the gauge)...
    await expect.poll(async () => /^heimdall_metrics_scrapes_in_flight (\d+)$/m.exec((await scrape()).text)?.[1], { timeout: 30_000 }).toBe('2');
    // ...and /livez answers meanwhile; the reader that takes nothing is cut after stall_timeout (5 s).
    expect((await fetch(`${admin}/livez`)).status).toBe(200);
    await expect.poll(async () => /^heimdall_metrics_scrapes_refused_total\{reason="stalled"\} (\d+)$/m.exec((await scrape()).text)?.[1], { timeout: 30_000 }).toBe('1');
    expect(/^heimdall_metrics_scrapes_in_flight (\d+)$/m.exec((await scrape()).text)?.[1]).toBe('1');
    stalled.destroy();
  }, 60_000);
});
