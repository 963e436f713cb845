import type { Metric, MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from 'prom-client';

/** One label set of a PlainHistogram: its counts as plain numbers. */
export interface PlainSeries {
  readonly labels: Readonly<Record<string, string>>;
  count: number;
  sum: number;
  /** Observations per bucket, not cumulative; the last slot counts those above every bound. */
  readonly buckets: Float64Array;
}

/** Options for createPlainHistogram. */
export interface PlainHistogramOptions {
  /** The histogram family (`<name>_bucket`, `_sum`, `_count`). */
  name: string;
  help: string;
  /** Upper bounds, ascending. */
  buckets: readonly number[];
  /** Also a counter family of the same observations (each label set's count), e.g. `heimdall_spans_total`. */
  counter?: { name: string; help: string } | undefined;
  registers: Registry[];
}

/** A histogram (and optionally a counter of the same observations) kept as plain numbers. */
export interface PlainHistogram {
  /** A new label set (make it once per label set and keep it: its order is the order series appear in). */
  series(labels: Record<string, string>): PlainSeries;
  /** Counts `value` in a label set. */
  observe(series: PlainSeries, value: number): void;
}

type Value = Omit<MetricValueWithName<string>, 'metricName'> & { metricName?: string; sharedLabels?: Readonly<Record<string, string>>; exemplar?: null };

/**
 * Creates a histogram for hot paths: observing one value is a bucket search and three additions —
 * no label hashing and no objects, unlike prom-client's Histogram and Counter, which hash the label
 * set on every call. It renders as prom-client's own do (the same families, lines and label order)
 * through the registries it is registered in, and aggregates (`sum`) like them across isolates.
 */
export function createPlainHistogram(options: PlainHistogramOptions): PlainHistogram {
  const { name, buckets: bounds } = options;
  const all: PlainSeries[] = [];
  /** Label sets observed since the last reset (prom-client shows a label set once it has counted). */
  const shown = (): PlainSeries[] => all.filter((s) => s.count > 0);
  const histogramValues = (): Value[] => {
    const values: Value[] = [];
    for (const s of shown()) {
      let acc = 0;
      bounds.forEach((le, i) => {
        acc += s.buckets[i] as number;
        values.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: `${name}_bucket`, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${name}_bucket`, exemplar: null });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${name}_count` });
    }
    return values;
  };
  /** A family as prom-client's registries read it: `getForPromString` for the text, `get` (labels merged) for JSON. */
  const family = (familyName: string, help: string, type: 'histogram' | 'counter', values: () => Value[]) => ({
    name: familyName,
    help,
    type,
    aggregator: 'sum' as const,
    getForPromString: async (): Promise<MetricObjectWithValues<MetricValue<string>>> => ({ name: familyName, help, type, aggregator: 'sum', values: values() }) as never,
    get: async (): Promise<MetricObjectWithValues<MetricValue<string>>> => ({
      name: familyName,
      help,
      type,
      aggregator: 'sum',
      values: values().map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } })),
    }) as never,
    reset: () => {
      for (const s of all) {
        s.count = 0;
        s.sum = 0;
        s.buckets.fill(0);
      }
    },
  });
  const { counter } = options;
  const metrics = [
    ...(counter ? [family(counter.name, counter.help, 'counter', () => shown().map((s) => ({ labels: s.labels, value: s.count })))] : []),
    family(name, options.help, 'histogram', histogramValues),
  ];
  for (const registry of options.registers) for (const m of metrics) registry.registerMetric(m as unknown as Metric);
  return {
    series(labels) {
      const s: PlainSeries = { labels, count: 0, sum: 0, buckets: new Float64Array(bounds.length + 1) };
      all.push(s);
      return s;
    },
    observe(s, value) {
      let i = 0;
      while (i < bounds.length && value > (bounds[i] as number)) i++;
      s.buckets[i] = (s.buckets[i] as number) + 1;
      s.count += 1;
      s.sum += value;
    },
  };
}
