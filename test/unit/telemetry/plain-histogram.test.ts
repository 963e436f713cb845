import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createPlainCounter, createPlainHistogram } from '../../../src/telemetry/plain-histogram.js';

const BUCKETS = [0.01, 0.1, 1];
const VALUES: Array<[string, number]> = [
  ['a', 0.005],
  ['a', 0.01],
  ['b', 0.5],
  ['a', 2],
  ['b', 0.1],
];

/** The same observations through prom-client's own Counter and Histogram. */
async function promClientText(): Promise<{ text: string; json: unknown }> {
  const registry = new Registry();
  const counter = new Counter({ name: 'x_total', help: 'Count.', labelNames: ['k'], registers: [registry] });
  const histogram = new Histogram({ name: 'x_seconds', help: 'Durations.', labelNames: ['k'], buckets: BUCKETS, registers: [registry] });
  for (const [k, v] of VALUES) {
    counter.inc({ k });
    histogram.observe({ k }, v);
  }
  return { text: await registry.metrics(), json: await registry.getMetricsAsJSON() };
}

describe('createPlainHistogram', () => {
  it('renders exactly what prom-client renders for the same observations, as text and as JSON', async () => {
    const registry = new Registry();
    const h = createPlainHistogram({ name: 'x_seconds', help: 'Durations.', buckets: BUCKETS, counter: { name: 'x_total', help: 'Count.' }, registers: [registry] });
    const series = new Map<string, ReturnType<typeof h.series>>();
    for (const [k, v] of VALUES) {
      let s = series.get(k);
      if (!s) series.set(k, (s = h.series({ k })));
      h.observe(s, v);
    }
    const expected = await promClientText();
    expect(await registry.metrics()).toBe(expected.text);
    expect(await registry.getMetricsAsJSON()).toEqual(expected.json);
  });

  it('shows a label set only once it has counted, and none after a reset', async () => {
    const registry = new Registry();
    const h = createPlainHistogram({ name: 'y_seconds', help: 'Durations.', buckets: BUCKETS, counter: { name: 'y_total', help: 'Count.' }, registers: [registry] });
    const idle = h.series({ k: 'idle' });
    h.observe(h.series({ k: 'busy' }), 0.2);
    const text = await registry.metrics();
    expect(text).toContain('y_total{k="busy"} 1');
    expect(text).toContain('y_seconds_bucket{le="1",k="busy"} 1');
    expect(text).not.toContain('idle');
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('busy');
    h.observe(idle, 5);
    expect(await registry.metrics()).toContain('y_seconds_bucket{le="+Inf",k="idle"} 1');
  });
});

describe('createPlainCounter', () => {
  it('renders exactly what prom-client\'s Counter renders for the same counts, as text and as JSON; a label set shows once it has counted, none after a reset', async () => {
    const ours = new Registry();
    const plain = createPlainCounter({ name: 'z_total', help: 'Calls.', registers: [ours] });
    const theirs = new Registry();
    const counter = new Counter({ name: 'z_total', help: 'Calls.', labelNames: ['method', 'code'], registers: [theirs] });
    const ok = plain.series({ method: 'Check', code: 'OK' });
    const denied = plain.series({ method: 'Check', code: 'DENIED' });
    plain.series({ method: 'Check', code: 'UNUSED' });
    ok.count += 3;
    denied.count++;
    counter.inc({ method: 'Check', code: 'OK' }, 3);
    counter.inc({ method: 'Check', code: 'DENIED' });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
    ours.resetMetrics();
    expect(await ours.metrics()).not.toContain('Check');
  });
});
