import type { Config } from '../config/schema.js';
import type { Registry } from 'prom-client';
import { createPlainHistogram } from '../telemetry/plain-histogram.js';
import { seriesShape, type SeriesLimits } from '../telemetry/series-limits.js';

/**
 * The spans of one request as the RED metrics need them (the texts as stored in otel_traces),
 * column by column: a handful of objects a request, not one a span. They are held until the request
 * is acknowledged, long enough to outlive scavenges: objects per span were promoted by the hundred
 * a request and made the major collections.
 */
export class SpanSummaries {
  readonly services: string[];
  readonly names: string[];
  readonly kinds: string[];
  readonly statuses: string[];
  readonly seconds: number[];
  #count = 0;

  /** `capacity`: the spans expected, for which the columns are sized at once (more still fit). */
  constructor(capacity = 0) {
    const column = <T>(): T[] => (capacity > 0 ? new Array<T>(capacity) : []);
    [this.services, this.names, this.kinds, this.statuses, this.seconds] = [column(), column(), column(), column(), column()];
  }

  add(service: string, name: string, kind: string, status: string, durationSeconds: number): void {
    const i = this.#count;
    this.services[i] = service;
    this.names[i] = name;
    this.kinds[i] = kind;
    this.statuses[i] = status;
    this.seconds[i] = durationSeconds;
    this.#count = i + 1;
  }

  /** Ends the columns at the spans added (fewer than the capacity when some were invalid); shrinking allocates nothing. */
  trim(): void {
    for (const column of this.#columns()) if (column.length !== this.#count) column.length = this.#count;
  }

  /** Freezes the columns (a shared instance: `add` then throws); returns this. */
  freeze(): this {
    for (const column of this.#columns()) Object.freeze(column);
    return this;
  }

  #columns(): unknown[][] {
    return [this.services, this.names, this.kinds, this.statuses, this.seconds];
  }

  /** The spans added. */
  get length(): number {
    return this.#count;
  }
}

/** Span-derived RED metrics (rate, errors, duration) by service, span name, kind and status. */
export interface RedMetrics {
  /** Counts spans. */
  observe(spans: SpanSummaries): void;
}

const LABELS = ['service_name', 'span_name', 'span_kind', 'status_code'] as const;
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** The RED family (a counter and a histogram a label set), as the series limits size it. */
export const RED_FAMILY = { name: 'heimdall_spans_total', labels: LABELS.length, shape: seriesShape(LABELS, [{ name: 'heimdall_spans_total' }, { name: 'heimdall_span_duration_seconds', buckets: BUCKETS }]) };

/**
 * Creates the RED metrics: `heimdall_spans_total` and `heimdall_span_duration_seconds`. Their label
 * values come from clients, so they take the series limits: values cut to the length limit, and
 * past `ingest.red_metrics.max_series` label sets (or the family's size budget) spans count under the `__overflow__` set.
 */
export function createRedMetrics(options: { config: Pick<Config['ingest']['red_metrics'], 'max_series'>; metrics: Registry; limits: SeriesLimits }): RedMetrics {
  // Plain numbers per label set: a span costs one lookup and no label hashing (prom-client hashes twice).
  const red = createPlainHistogram({
    name: 'heimdall_span_duration_seconds',
    help: 'Span durations, by service, span name, kind and status code.',
    buckets: BUCKETS,
    counter: { name: 'heimdall_spans_total', help: 'Spans received, by service, span name, kind and status code.' },
    registers: [options.metrics],
  });
  const series = options.limits.family({ name: RED_FAMILY.name, labelNames: LABELS, maxSeries: options.config.max_series, shape: RED_FAMILY.shape, bind: (labels) => red.series(labels) });
  // One label-values array for every span (the series do not keep it).
  const values = ['', '', '', ''];
  return {
    observe(spans) {
      for (let i = 0; i < spans.length; i++) {
        values[0] = spans.services[i] ?? '';
        values[1] = spans.names[i] ?? '';
        values[2] = spans.kinds[i] ?? '';
        values[3] = spans.statuses[i] ?? '';
        red.observe(series.get(values), spans.seconds[i] ?? 0);
      }
    },
  };
}
