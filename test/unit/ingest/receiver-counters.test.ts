/** The Collector's receiver counters: one family per kind and item, by transport; a loss is refused when retryable, else failed. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createReceiverCounters } from '../../../src/ingest/otlp/receiver-counters.js';
import { RequestTooLarge, RetryableError } from '../../../src/ingest/pipeline/errors.js';

/** The samples of `metrics` whose names start with heimdall_receiver_, as "name{labels} value" lines. */
async function samples(metrics: Registry): Promise<string[]> {
  return (await metrics.metrics()).split('\n').filter((l) => l.startsWith('heimdall_receiver_'));
}

describe('receiver counters', () => {
  it('registers the twelve families, with no series before a count', async () => {
    const metrics = new Registry();
    createReceiverCounters(metrics);
    const names = (await metrics.getMetricsAsJSON()).map((m) => m.name).sort();
    expect(names).toEqual(
      ['accepted', 'failed', 'refused', 'rejected'].flatMap((kind) => ['log_records', 'metric_points', 'spans'].map((item) => `heimdall_receiver_${kind}_${item}_total`)).sort(),
    );
    expect(await samples(metrics)).toEqual([]);
    expect(metrics.getSingleMetric('heimdall_receiver_refused_log_records_total')).toMatchObject({ help: 'log records refused with a retryable error (memory, queue full, storage unavailable), by transport.' });
  });

  it('counts by item and transport; a retryable loss as refused, any other as failed; no rejected series for zero', async () => {
    const metrics = new Registry();
    const counters = createReceiverCounters(metrics);
    counters.accepted('spans', 'grpc', 5);
    counters.accepted('spans', 'http', 2);
    counters.rejected('log_records', 'http', 3);
    counters.rejected('log_records', 'grpc', 0);
    counters.lost('metric_points', 'grpc', 4, new RetryableError('memory limit', 1_000));
    counters.lost('metric_points', 'grpc', 6, new RequestTooLarge('too large'));
    counters.lost('spans', 'http', 1, new Error('boom'));
    expect((await samples(metrics)).sort()).toEqual(
      [
        'heimdall_receiver_accepted_spans_total{transport="grpc"} 5',
        'heimdall_receiver_accepted_spans_total{transport="http"} 2',
        'heimdall_receiver_rejected_log_records_total{transport="http"} 3',
        'heimdall_receiver_refused_metric_points_total{transport="grpc"} 4',
        'heimdall_receiver_failed_metric_points_total{transport="grpc"} 6',
        'heimdall_receiver_failed_spans_total{transport="http"} 1',
      ].sort(),
    );
  });
});
