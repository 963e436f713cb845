import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createSeriesLimits, seriesShape } from '../../../src/telemetry/series-limits.js';
import { silentLogger } from '../../support/temp.js';

/** A family of one counter and one histogram with two client-controlled labels, as the RED metrics have. */
function family(metrics: Registry, limits: ReturnType<typeof createSeriesLimits>, name: string, maxSeries: number) {
  const labelNames = ['service_name', 'span_name'] as const;
  const buckets = [0.01, 0.1, 1];
  const calls = new Counter({ name: `${name}_total`, help: 'Calls.', labelNames, registers: [metrics] });
  const duration = new Histogram({ name: `${name}_seconds`, help: 'Durations.', labelNames, buckets, registers: [metrics] });
  return limits.family({
    name: `${name}_total`,
    labelNames,
    maxSeries,
    shape: seriesShape(labelNames, [{ name: `${name}_total` }, { name: `${name}_seconds`, buckets }]),
    bind: (labels) => ({ calls: calls.labels(labels), duration: duration.labels(labels) }),
  });
}

describe('series limits', () => {
  it('cuts long label values to the length limit, marking the cut, so long values sharing a prefix share a series', async () => {
    const metrics = new Registry();
    const limits = createSeriesLimits({ maxLabelLength: 16, maxBytes: 1 << 20, metrics, logger: silentLogger() });
    const f = family(metrics, limits, 'x', 100);
    f.get(['svc', 'a'.repeat(10_000)]).calls.inc();
    f.get(['svc', `${'a'.repeat(15)}bb`]).calls.inc();
    f.get(['svc', 'short']).calls.inc();
    // A surrogate pair is never split by the cut.
    f.get(['svc', `${'c'.repeat(14)}🚀🚀`]).calls.inc();
    const text = await metrics.metrics();
    expect(text).toContain(`x_total{service_name="svc",span_name="${'a'.repeat(15)}…"} 2`);
    expect(text).toContain('x_total{service_name="svc",span_name="short"} 1');
    expect(text).toContain(`x_total{service_name="svc",span_name="${'c'.repeat(14)}…"} 1`);
    expect(text).not.toContain('a'.repeat(16));
    expect(text).toMatch(/^heimdall_metrics_truncated_label_values_total\{family="x_total"\} 2$/m);
  });

  it('counts label sets past a family cap under the overflow set, and counts them', async () => {
    const metrics = new Registry();
    const limits = createSeriesLimits({ maxLabelLength: 128, maxBytes: 1 << 20, metrics, logger: silentLogger() });
    const f = family(metrics, limits, 'x', 2);
    for (const name of ['a', 'b', 'c', 'd', 'a']) f.get(['svc', name]).calls.inc();
    const text = await metrics.metrics();
    expect(text).toContain('x_total{service_name="svc",span_name="a"} 2');
    expect(text).toContain('x_total{service_name="__overflow__",span_name="__overflow__"} 2');
    expect(text).not.toContain('span_name="c"');
    expect(text).toMatch(/^heimdall_metrics_overflow_total\{family="x_total",reason="series"\} 2$/m);
  });

  it('keeps the text of every limited family under the size budget, whatever the values', async () => {
    const metrics = new Registry();
    const maxBytes = 64 * 1024;
    const limits = createSeriesLimits({ maxLabelLength: 128, maxBytes, metrics, logger: silentLogger() });
    const a = family(metrics, limits, 'a', 100_000);
    const b = family(metrics, limits, 'b', 100_000);
    // Hostile values: long, with characters that the text format escapes (each takes two bytes there).
    for (let i = 0; i < 5_000; i++) {
      const value = `${i} ${'"\\\n'.repeat(60)} ${'é'.repeat(60)}`;
      a.get([value, value]).duration.observe(0.05);
      b.get([String(i), value]).calls.inc();
    }
    const text = await metrics.metrics();
    const limited = text.split('\n').filter((l) => /^(a|b)_/.test(l)).join('\n');
    expect(Buffer.byteLength(limited)).toBeLessThanOrEqual(maxBytes);
    expect(Buffer.byteLength(limited)).toBeGreaterThan(maxBytes / 2);
    expect(text).toMatch(/^heimdall_metrics_overflow_total\{family="a_total",reason="size"\} [1-9]\d*$/m);
    expect(text).toMatch(/^heimdall_metrics_overflow_total\{family="b_total",reason="size"\} [1-9]\d*$/m);
    expect(text).toMatch(/^heimdall_metrics_series_bytes \d+$/m);
    expect(Number(/^heimdall_metrics_series_bytes (\d+)$/m.exec(text)?.[1])).toBeLessThanOrEqual(maxBytes);
  });
});
