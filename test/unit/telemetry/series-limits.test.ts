import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createSeriesLimits, seriesShape, worstSeriesBytes } from '../../../src/telemetry/series-limits.js';
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
  it('cuts long label values to the length limit in bytes as /metrics writes them, marking the cut, so long values sharing a prefix share a series', async () => {
    const metrics = new Registry();
    const limits = createSeriesLimits({ config: { max_label_length: 16, max_family_size: 1 << 20 }, metrics, logger: silentLogger() });
    const f = family(metrics, limits, 'x', 100);
    f.get(['svc', 'a'.repeat(10_000)]).calls.inc();
    f.get(['svc', `${'a'.repeat(15)}bb`]).calls.inc();
    f.get(['svc', 'short']).calls.inc();
    // A character is never split by the cut (the marker takes 3 bytes); escaped characters take 2.
    f.get(['svc', `${'c'.repeat(12)}🚀🚀`]).calls.inc();
    f.get(['svc', '"'.repeat(20)]).calls.inc();
    f.get(['svc', 'é'.repeat(8)]).calls.inc(); // 16 bytes: kept whole
    const text = await metrics.metrics();
    expect(text).toContain(`x_total{service_name="svc",span_name="${'a'.repeat(13)}…"} 2`);
    expect(text).toContain('x_total{service_name="svc",span_name="short"} 1');
    expect(text).toContain(`x_total{service_name="svc",span_name="${'c'.repeat(12)}…"} 1`);
    expect(text).toContain(`x_total{service_name="svc",span_name="${'\\"'.repeat(6)}…"} 1`);
    expect(text).toContain(`x_total{service_name="svc",span_name="${'é'.repeat(8)}"} 1`);
    expect(text).not.toContain('a'.repeat(14));
    for (const m of text.matchAll(/span_name="((?:[^"\\]|\\.)*)"/g)) expect(Buffer.byteLength(m[1] ?? '')).toBeLessThanOrEqual(16);
    expect(text).toMatch(/^heimdall_metrics_truncated_label_values_total\{family="x_total"\} 3$/m);
  });

  it('finds a label set again as the same series, and never as another set sharing some of its values', async () => {
    const metrics = new Registry();
    const limits = createSeriesLimits({ config: { max_label_length: 8, max_family_size: 1 << 20 }, metrics, logger: silentLogger() });
    const f = family(metrics, limits, 'x', 100);
    const sets = [['a', 'b'], ['b', 'a'], ['a', ''], ['', 'a'], ['a', 'b'], ['a\u0000b', ''], ['long', 'x'.repeat(20)], ['long', 'x'.repeat(20)]];
    for (const set of sets) f.get(set).calls.inc();
    expect(f.get(['a', 'b'])).toBe(f.get(['a', 'b']));
    expect(f.get(['long', 'x'.repeat(30)])).toBe(f.get(['long', 'x'.repeat(20)]));
    const text = await metrics.metrics();
    expect(text).toContain('x_total{service_name="a",span_name="b"} 2');
    expect(text).toContain('x_total{service_name="b",span_name="a"} 1');
    expect(text).toContain('x_total{service_name="a",span_name=""} 1');
    expect(text).toContain('x_total{service_name="",span_name="a"} 1');
    expect(text).toContain(`x_total{service_name="long",span_name="${'x'.repeat(5)}…"} 2`);
  });

  it('counts label sets past a family cap under the overflow set, and counts them', async () => {
    const metrics = new Registry();
    const limits = createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger: silentLogger() });
    const f = family(metrics, limits, 'x', 2);
    for (const name of ['a', 'b', 'c', 'd', 'a']) f.get(['svc', name]).calls.inc();
    const text = await metrics.metrics();
    expect(text).toContain('x_total{service_name="svc",span_name="a"} 2');
    expect(text).toContain('x_total{service_name="__overflow__",span_name="__overflow__"} 2');
    expect(text).not.toContain('span_name="c"');
    expect(text).toMatch(/^heimdall_metrics_overflow_total\{family="x_total",reason="series"\} 2$/m);
  });

  it('keeps label sets from the configuration outside the cap and the budget: clients cannot make them overflow', async () => {
    const metrics = new Registry();
    const limits = createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger: silentLogger() });
    const f = family(metrics, limits, 'x', 2);
    for (const name of ['a', 'b', 'c']) f.get(['client', name]).calls.inc();
    f.configured(['config', 'limit']).calls.inc();
    f.configured(['config', 'limit']).calls.inc();
    const text = await metrics.metrics();
    expect(text).toContain('x_total{service_name="config",span_name="limit"} 2');
    expect(text).toContain('x_total{service_name="__overflow__",span_name="__overflow__"} 1');
  });

  it('keeps the text of each limited family under its own size budget, whatever the values; one family full leaves the others theirs', async () => {
    const metrics = new Registry();
    const maxFamilyBytes = 64 * 1024;
    const limits = createSeriesLimits({ config: { max_label_length: 128, max_family_size: maxFamilyBytes }, metrics, logger: silentLogger() });
    const a = family(metrics, limits, 'a', 100_000);
    const b = family(metrics, limits, 'b', 100_000);
    // Hostile values fill a: long, with characters that the text format escapes (each takes two bytes there).
    for (let i = 0; i < 5_000; i++) {
      const value = `${i} ${'"\\\n'.repeat(60)} ${'é'.repeat(60)}`;
      a.get([value, value]).duration.observe(0.05);
    }
    // b still takes its label sets.
    for (let i = 0; i < 20; i++) b.get([String(i), 'short']).calls.inc();
    const text = await metrics.metrics();
    const lines = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name}_`)).join('\n');
    expect(Buffer.byteLength(lines('a'))).toBeLessThanOrEqual(maxFamilyBytes);
    expect(Buffer.byteLength(lines('a'))).toBeGreaterThan(maxFamilyBytes / 2);
    expect(text).toMatch(/^heimdall_metrics_overflow_total\{family="a_total",reason="size"\} [1-9]\d*$/m);
    expect(text).not.toMatch(/^heimdall_metrics_overflow_total\{family="b_total",reason="size"\} [1-9]/m);
    for (let i = 0; i < 20; i++) expect(text).toContain(`b_total{service_name="${i}",span_name="short"} 1`);
    const used = (f: string) => Number(new RegExp(`^heimdall_metrics_series_bytes\\{family="${f}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    expect(used('a_total')).toBeLessThanOrEqual(maxFamilyBytes);
    expect(used('b_total')).toBeLessThan(maxFamilyBytes / 2);
  });

  it('bounds a family at its cap by its worst label set: every value at the length limit', () => {
    const shape = seriesShape(['a', 'b'], [{ name: 'x_total' }, { name: 'x_seconds', buckets: [0.1, 1] }]);
    expect(worstSeriesBytes(shape, 2, 128)).toBe(shape.lines * (shape.lineBytes + 256));
  });
});
