import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRedMetrics } from '../../../src/ingest/red-metrics.js';
import { silentLogger } from '../../support/temp.js';

describe('span RED metrics', () => {
  it('counts calls and durations per label set, and caps the label sets', async () => {
    const metrics = new Registry();
    const logs: string[] = [];
    const logger = silentLogger();
    logger.warn = ((_o: unknown, msg: string) => void logs.push(msg)) as typeof logger.warn;
    const red = createRedMetrics({ metrics, maxSeries: 2, logger });
    const span = (name: string, status = 'Ok') => ({ service: 'svc', name, kind: 'Server', status, durationSeconds: 0.25 });
    red.observe([span('a'), span('a'), span('b'), span('c'), span('d', 'Error')]);
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_spans_total{service_name="svc",span_name="a",span_kind="Server",status_code="Ok"} 2');
    expect(text).toContain('heimdall_spans_total{service_name="svc",span_name="b",span_kind="Server",status_code="Ok"} 1');
    expect(text).toContain('heimdall_spans_total{service_name="__overflow__",span_name="__overflow__",span_kind="__overflow__",status_code="__overflow__"} 2');
    expect(text).toContain('heimdall_span_metrics_overflow_total 2');
    expect(text).toContain('heimdall_span_duration_seconds_sum{service_name="svc",span_name="a",span_kind="Server",status_code="Ok"} 0.5');
    expect(text).not.toContain('span_name="c"');
    expect(logs).toHaveLength(1);
  });
});
