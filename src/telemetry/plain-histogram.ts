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

/** A counter's samples: each label set's count. */
const counterValues = (series: PlainSeries[]): Value[] => series.map((s) => ({ labels: s.labels, value: s.count }));

/** A family as prom-client's registries read it: `getForPromString` for the text, `get` (labels merged) for JSON; `reset` zeroes `all`. */
function family(familyName: string, help: string, type: 'histogram' | 'counter', values: () => Value[], all: PlainSeries[]) {
  return {
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
  };
}

/** Registers the families in each registry. */
function register(registers: Registry[], families: Array<ReturnType<typeof family>>): void {
  for (const registry of registers) for (const f of families) registry.registerMetric(f as unknown as Metric);
}

/** A counter for hot paths (see createPlainCounter). */
export interface PlainCounter {
  /** A new label set (make it once per label set and keep it). */
  series(labels: Record<string, string>): PlainSeries;
}

/**
 * Creates a counter kept as plain numbers: count with `series.count++` (no label hashing, no
 * objects, unlike prom-client's Counter). It renders as prom-client's Counter does and aggregates
 * (`sum`) like it across isolates; a label set shows once it has counted.
 */
export function createPlainCounter(options: { name: string; help: string; registers: Registry[] }): PlainCounter {
  const all: PlainSeries[] = [];
  register(options.registers, [family(options.name, options.help, 'counter', () => counterValues(all.filter((s) => s.count > 0)), all)]);
  return {
    series(labels) {
      const s: PlainSeries = { labels, count: 0, sum: 0, buckets: new Float64Array(0) };
      all.push(s);
      return s;
    },
  };
}

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
  const { counter } = options;
  register(options.registers, [
    ...(counter ? [family(counter.name, counter.help, 'counter', () => counterValues(shown()), all)] : []),
    family(name, options.help, 'histogram', histogramValues, all),
  ]);
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
