import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRedMetrics, SpanSummaries } from '../../../src/ingest/red-metrics.js';
import { createSeriesLimits } from '../../../src/telemetry/series-limits.js';
import { silentLogger } from '../../support/temp.js';

/** The summaries of `spans`, in order. */
function summaries(spans: Array<{ service: string; name: string; kind: string; status: string; durationSeconds: number }>): SpanSummaries {
  const out = new SpanSummaries();
  for (const s of spans) out.add(s.service, s.name, s.kind, s.status, s.durationSeconds);
  return out;
}

describe('span RED metrics', () => {
  it('counts calls and durations per label set, and caps the label sets', async () => {
    const metrics = new Registry();
    const logs: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push((JSON.parse(line) as { msg: string }).msg) });
    const red = createRedMetrics({ config: { max_series: 2 }, metrics, limits: createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger }) });
    const span = (name: string, status = 'Ok') => ({ service: 'svc', name, kind: 'Server', status, durationSeconds: 0.25 });
    red.observe(summaries([span('a'), span('a'), span('b'), span('c'), span('d', 'Error')]));
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_spans_total{service_name="svc",span_name="a",span_kind="Server",status_code="Ok"} 2');
    expect(text).toContain('heimdall_spans_total{service_name="svc",span_name="b",span_kind="Server",status_code="Ok"} 1');
    expect(text).toContain('heimdall_spans_total{service_name="__overflow__",span_name="__overflow__",span_kind="__overflow__",status_code="__overflow__"} 2');
    expect(text).toContain('heimdall_metrics_overflow_total{family="heimdall_spans_total",reason="series"} 2');
    expect(text).toContain('heimdall_span_duration_seconds_sum{service_name="svc",span_name="a",span_kind="Server",status_code="Ok"} 0.5');
    expect(text).not.toContain('span_name="c"');
    expect(logs).toHaveLength(1);
  });

  it('cuts span and service names to the label length limit (bytes, the marker included)', async () => {
    const metrics = new Registry();
    const red = createRedMetrics({ config: { max_series: 100 }, metrics, limits: createSeriesLimits({ config: { max_label_length: 32, max_family_size: 1 << 20 }, metrics, logger: silentLogger() }) });
    red.observe(summaries([{ service: 's'.repeat(1000), name: `GET /${'x'.repeat(100_000)}`, kind: 'Server', status: 'Ok', durationSeconds: 0.01 }]));
    const text = await metrics.metrics();
    expect(text).toContain(`heimdall_spans_total{service_name="${'s'.repeat(29)}…",span_name="GET /${'x'.repeat(24)}…",span_kind="Server",status_code="Ok"} 1`);
    expect(Buffer.byteLength(text)).toBeLessThan(20_000);
  });

  it('span summaries: sized columns hold exactly the spans added once trimmed, more than the capacity still fit, a frozen one refuses spans', () => {
    const sized = new SpanSummaries(3);
    sized.add('svc', 'GET /', 'Server', 'Ok', 0.5);
    sized.trim();
    expect([sized.length, sized.services, sized.seconds]).toEqual([1, ['svc'], [0.5]]);
    const small = new SpanSummaries(1);
    for (let i = 0; i < 3; i++) small.add('svc', `span ${i}`, 'Server', 'Unset', i);
    small.trim();
    expect([small.length, small.names]).toEqual([3, ['span 0', 'span 1', 'span 2']]);
    const shared = new SpanSummaries().freeze();
    shared.trim();
    expect(shared.length).toBe(0);
    expect(() => shared.add('svc', 'x', 'Server', 'Ok', 1)).toThrow(TypeError);
    expect(shared.length).toBe(0);
  });
});
