/**
 * deploy/prometheus: the alert rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`), each alert with a case that fires and one that does not; every metric
 * and label the rules and their unit tests' input series name is in a real agent's /metrics (so a
 * renamed metric or label fails here); and a real Prometheus, configured from prometheus.yml,
 * scrapes a real agent behind a token and evaluates every rule without error.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { SpanStatusCode } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary } from '../support/binaries.js';
import { familyLabels, familyOf, parseFamilies, parsePromql, type Selector } from '../support/promql.js';
import { testResource } from '../support/otel-clients.js';
import { freePort } from '../support/redis.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const DIR = join(import.meta.dirname, '..', '..', 'deploy', 'prometheus');
const RULES = join(DIR, 'heimdall-alerts.yaml');
const UNIT_TESTS = join(DIR, 'heimdall-alerts.test.yaml');
const CONFIG = join(DIR, 'prometheus.yml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface UnitTests {
  tests: Array<{ input_series: Array<{ series: string }>; alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

const rules = (): Rule[] => (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const unitTests = (): UnitTests => parse(readFileSync(UNIT_TESTS, 'utf8')) as UnitTests;

/** What promtool prints for `args` (run in deploy/prometheus), ending with its exit status. */
function promtool(...args: string[]): string {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' });
  return `${r.stdout}${r.stderr}exit=${r.status}`;
}

describe('the selector parser', () => {
  it('finds metric names with their matchers and the grouping labels, not functions, keywords, strings or durations', () => {
    const parsed = parsePromql('sum without (mode) (changes(heimdall_security_mode{mode!="a,b} x{y=\\"z\\"}"}[10m])) > 0.5 * 1e3 and on (instance, pod) up offset 5m unless a:b:rate5m{service_name=~\'x\'}');
    expect(parsed.selectors).toEqual([
      { metric: 'heimdall_security_mode', labels: ['mode'] },
      { metric: 'up', labels: [] },
      { metric: 'a:b:rate5m', labels: ['service_name'] },
    ]);
    expect(parsed.grouping).toEqual(['mode', 'instance', 'pod']);
  });
});

describe.runIf(haveBinary('promtool'))('deploy/prometheus with promtool', () => {
  it('the rules pass promtool check rules, and prometheus.yml (which loads them) promtool check config', () => {
    const found = `SUCCESS: ${rules().length} rules found`;
    expect(promtool('check', 'rules', basename(RULES))).toBe(`Checking heimdall-alerts.yaml\n  ${found}\n\nexit=0`);
    expect(promtool('check', 'config', basename(CONFIG))).toBe(`Checking prometheus.yml\n  SUCCESS: 1 rule files found\n SUCCESS: prometheus.yml is valid prometheus config file syntax\n\nChecking heimdall-alerts.yaml\n  ${found}\n\nexit=0`);
  });

  it('the rules pass their unit tests (promtool test rules)', () => {
    expect(promtool('test', 'rules', basename(UNIT_TESTS))).toBe('Unit Testing:  heimdall-alerts.test.yaml\n  SUCCESS\n\nexit=0');
  });

  it('every alert has a unit-test case where it fires and one where it does not, a severity, a summary, a description and a README runbook', () => {
    const cases = unitTests().tests.flatMap((t) => t.alert_rule_test ?? []);
    const alerts = rules().filter((r) => r.alert !== undefined);
    expect(alerts.length).toBeGreaterThanOrEqual(14);
    for (const r of alerts) {
      const name = r.alert ?? '';
      expect(cases.some((c) => c.alertname === name && c.exp_alerts.length > 0), `${name} fires in a case`).toBe(true);
      expect(cases.some((c) => c.alertname === name && c.exp_alerts.length === 0), `${name} stays quiet in a case`).toBe(true);
      expect(['warning', 'critical']).toContain(r.labels?.severity);
      expect(r.annotations?.summary).toBeTruthy();
      expect(r.annotations?.description).toBeTruthy();
      expect(r.annotations?.runbook_url).toBe(`README.md#${name.toLowerCase()}`);
    }
  });
});

/** Exports one span a service through the real OTLP/gRPC exporter, with `status`. */
async function sendSpans(address: string, spans: Array<{ service: string; name: string; status: SpanStatusCode }>): Promise<void> {
  for (const s of spans) {
    const provider = new BasicTracerProvider({ resource: testResource(s.service), spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `http://${address}`, timeoutMillis: 60_000 }))] });
    const span = provider.getTracer('alerts').startSpan(s.name);
    span.setStatus({ code: s.status });
    span.end();
    await provider.shutdown();
  }
}

describe('the metrics and labels the rules name, in a real agent', () => {
  const dirs = { limits: tempDir(), queue: tempDir() };
  const held: Socket[] = [];
  const silent = createServer((s) => void held.push(s));
  let t: TestAgent;
  let c: AgentClient;
  const scrape = async (): Promise<string> => (await fetch(`${t.adminUrl}/metrics`)).text();

  beforeAll(async () => {
    writeFileSync(join(dirs.limits.path, 'alerts.yaml'), 'domain: alerts\ndescriptors:\n  - key: user\n    rate_limit: { unit: day, requests_per_unit: 0 }\n');
    const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    // hang: its runs never end, so its next ticks overlap; broken: its probe is refused, so its runs fail.
    const scheduled = [
      { name: 'hang', schedule: '* * * * * *', kind: 'http-check', params: { url: `http://127.0.0.1:${port}/`, timeout: '300s' } },
      { name: 'broken', schedule: '* * * * * *', kind: 'http-check', params: { url: `http://127.0.0.1:${await freePort()}/` } },
    ];
    t = await startTestAgent({
      ingest: { ack: 'queued', queue: { path: dirs.queue.path } },
      ratelimit: { config_path: dirs.limits.path, over_limit_window: '1s', security: { incident_threshold: 3, automation: { honeypots: [{ name: 'trap', entries: ['path=/trap'] }] } } },
      jobs: { system_check: { enabled: false }, scheduled },
    });
    c = connect({ addr: t.grpcAddress });
  }, 60_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    for (const s of held) s.destroy();
    silent.close();
    for (const d of Object.values(dirs)) d.cleanup();
  });

  it('counts an over-limit record of one entity and window with incident_threshold hits as an incident (heimdall_ratelimit_incidents_total), one with fewer not', async () => {
    const check = (value: string, hits: number) => c.unary(RateLimitService.method.shouldRateLimit, { domain: 'alerts', hitsAddend: hits, descriptors: [{ entries: [{ key: 'user', value }] }] });
    await check('mallory', 3);
    await check('bob', 2);
    // Both records written (one window of 1 s, or two): only mallory's makes an incident.
    const entities = async () => (await c.unary(QueryService.method.listEvents, { eventTypes: ['ratelimit.over_limit'], pageSize: 100 })).events.map((e) => (e.payload as { entity?: string } | undefined)?.entity);
    await until(async () => (await entities()).length === 2, 30_000, 'both over-limit records');
    expect((await entities()).sort()).toEqual(['user=bob', 'user=mallory']);
    expect(await scrape()).toMatch(/^heimdall_ratelimit_incidents_total 1$/m);
  }, 60_000);

  it('names only metrics and labels that /metrics has: in the rules and in their unit tests', async () => {
    await sendSpans(t.grpcAddress, [
      { service: 'checkout', name: 'pay', status: SpanStatusCode.ERROR },
      { service: 'checkout', name: 'pay', status: SpanStatusCode.OK },
    ]);
    // A honeypot hit: the rate-limit worker's family gets its honeypot label.
    await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'alerts', descriptors: [{ entries: [{ key: 'path', value: '/trap' }] }] });
    // The jobs' families get their labels once a run failed and a tick overlapped.
    const text = await until(async () => {
      const s = await scrape();
      return /^heimdall_job_runs_total\{.*status="failed"/m.test(s) && /^heimdall_job_ticks_skipped_total\{.*reason="overlap"/m.test(s) && /^heimdall_spans_total\{service_name="checkout"/m.test(s) && /^heimdall_security_honeypot_hits_total\{honeypot="trap"/m.test(s) && s;
    }, 30_000, 'a failed run, an overlapping tick, the spans and the honeypot hit in /metrics');
    const found = parseFamilies(text);
    // A refusal, a retry, a dropped dead letter: families without samples here get their declared labels.
    const labelsOf = (name: string): Set<string> => familyLabels(found, familyOf(found, name) ?? name, t.agent.metrics);
    const recorded = new Set(rules().flatMap((r) => (r.record ? [r.record] : [])));
    const problems: string[] = [];
    const checkSelectors = (where: string, selectors: Selector[], ignore: string[] = []): void => {
      for (const s of selectors) {
        if (s.metric.includes(':')) {
          if (!recorded.has(s.metric)) problems.push(`${where}: ${s.metric} is not recorded by any rule`);
          continue;
        }
        if (familyOf(found, s.metric) === undefined) problems.push(`${where}: no family ${s.metric} in /metrics`);
        else for (const l of s.labels) if (!ignore.includes(l) && !labelsOf(s.metric).has(l)) problems.push(`${where}: ${s.metric} has no label ${l}`);
      }
    };
    for (const r of rules()) {
      const where = r.alert ?? r.record ?? '';
      const { selectors, grouping } = parsePromql(r.expr);
      checkSelectors(where, selectors);
      const raw = selectors.filter((s) => !s.metric.includes(':'));
      for (const l of grouping) if (!raw.some((s) => labelsOf(s.metric).has(l))) problems.push(`${where}: groups by ${l}, which none of its metrics has`);
    }
    // The unit tests' series: real names and labels, plus the scrape target's `instance`.
    for (const t of unitTests().tests) for (const s of t.input_series) checkSelectors(`heimdall-alerts.test.yaml: ${s.series}`, parsePromql(s.series).selectors, ['instance']);
    expect(problems).toEqual([]);
  }, 60_000);
});

describe.runIf(haveBinary('prometheus'))('a real Prometheus with prometheus.yml, scraping an agent behind a token', () => {
  const TOKEN = 'metrics-scrape-token-000001';
  const dir = tempDir();
  let t: TestAgent;
  let prometheus: ChildProcess;
  let api = '';
  const get = async <T>(path: string): Promise<T> => ((await (await fetch(`${api}${path}`)).json()) as { data: T }).data;

  beforeAll(async () => {
    t = await startTestAgent({
      auth: { enabled: true, tokens: [{ name: 'prometheus', token: TOKEN, scopes: ['query'] }] },
      telemetry: { metrics: { scope: 'query' } },
      ratelimit: { security: { mode: 'elevated' } },
      jobs: { system_check: { enabled: false } },
    });
    // prometheus.yml's job as it is, pointed at this agent with the token; rules and scrapes every second.
    const config = parse(readFileSync(CONFIG, 'utf8')) as { global: Record<string, string>; rule_files: string[]; scrape_configs: Array<Record<string, unknown>> };
    const job = config.scrape_configs.find((j) => j.job_name === 'heimdall') as Record<string, unknown>;
    writeFileSync(join(dir.path, 'token'), TOKEN);
    Object.assign(job, { scrape_interval: '1s', scrape_timeout: '1s', authorization: { credentials_file: join(dir.path, 'token') }, static_configs: [{ targets: [new URL(t.adminUrl).host] }] });
    Object.assign(config, { global: { ...config.global, evaluation_interval: '1s' }, rule_files: config.rule_files.map((f) => join(DIR, f)) });
    writeFileSync(join(dir.path, 'prometheus.yml'), stringify(config));
    const port = await freePort();
    api = `http://127.0.0.1:${port}/api/v1`;
    prometheus = spawn('prometheus', [`--config.file=${join(dir.path, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir.path, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  }, 60_000);
  afterAll(async () => {
    const exited = new Promise((resolve) => prometheus.once('exit', resolve));
    prometheus.kill('SIGTERM');
    await exited;
    await t.stop();
    dir.cleanup();
  });

  it('scrapes /metrics with the token, evaluates every rule without error, and fires on the agent (HeimdallSecurityModeNotNormal)', async () => {
    type Targets = { activeTargets: Array<{ health: string; lastError: string; labels: Record<string, string> }> };
    const target = await until(async () => (await get<Targets>('/targets').catch(() => undefined))?.activeTargets.find((a) => a.health === 'up'), 60_000, 'the agent scraped');
    expect(target.labels).toEqual({ instance: new URL(t.adminUrl).host, job: 'heimdall' });
    type Rules = { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
    // Two evaluations after the first scrape: every rule has run on real series.
    const evaluated = await until(async () => {
      const all = (await get<Rules>('/rules')).groups.flatMap((g) => g.rules);
      return all.every((r) => r.health !== 'unknown') && all;
    }, 60_000, 'every rule evaluated');
    expect(evaluated.filter((r) => r.health !== 'ok')).toEqual([]);
    expect(evaluated).toHaveLength(rules().length);
    type Alerts = { alerts: Array<{ labels: Record<string, string>; state: string; annotations: Record<string, string> }> };
    const alert = await until(async () => (await get<Alerts>('/alerts')).alerts.find((a) => a.labels.alertname === 'HeimdallSecurityModeNotNormal' && a.state === 'firing'), 60_000, 'the alert firing');
    expect(alert.labels).toEqual({ alertname: 'HeimdallSecurityModeNotNormal', instance: new URL(t.adminUrl).host, job: 'heimdall', mode: 'elevated', severity: 'warning' });
    expect(alert.annotations.summary).toBe(`Heimdall ${new URL(t.adminUrl).host} is in elevated mode`);
  }, 120_000);
});
