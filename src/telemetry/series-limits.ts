import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from './logger.js';

/** Ends a label value cut to the length limit. */
export const TRUNCATED = '…';
/** Every label of the label set that counts what a family's bounds refused. */
export const OVERFLOW = '__overflow__';

/** Options for createSeriesLimits. */
export interface SeriesLimitsOptions {
  /** Longest label value kept (UTF-16 code units); a longer one is cut to it, ending with TRUNCATED. */
  maxLabelLength: number;
  /** Bytes of /metrics text the label sets of every limited family may take together. */
  maxBytes: number;
  /** Registry for the limits' own metrics. */
  metrics: Registry;
  /** The agent's logger; the limits log as component `metrics`. */
  logger: Logger;
}

/** How one label set of a family renders: its lines, and the bytes of a line besides its label values. */
export interface SeriesShape {
  lines: number;
  lineBytes: number;
}

/** Options for SeriesLimits.family. */
export interface FamilyOptions<T> {
  /** Names the family in the limits' metrics and logs (its first metric's name). */
  name: string;
  labelNames: readonly string[];
  /** Label sets kept at most; later ones count under the overflow set. */
  maxSeries: number;
  shape: SeriesShape;
  /** Makes the metric children of one label set. */
  bind(labels: Record<string, string>): T;
}

/** The label sets of one family, bounded. */
export interface BoundedFamily<T> {
  /**
   * The children for these label values (in labelNames order), each cut to the length limit; the
   * overflow set's once the family holds maxSeries label sets or the size budget is spent.
   */
  get(values: readonly string[]): T;
}

/** Bounds shared by every metric family whose label values come from clients. */
export interface SeriesLimits {
  family<T>(options: FamilyOptions<T>): BoundedFamily<T>;
}

/** Characters of a sample value, at most (`-1.2345678901234567e+308`), and its space and newline. */
const VALUE_BYTES = 26;

/**
 * The shape of label sets shared by counters and gauges (no `buckets`) and histograms with these
 * label names: a line is `name{label="value",...} sample`, a histogram adds `_bucket` lines with
 * an `le` label, `_sum` and `_count`.
 */
export function seriesShape(labelNames: readonly string[], metrics: ReadonlyArray<{ name: string; buckets?: readonly number[] }>): SeriesShape {
  const labels = labelNames.reduce((n, l) => n + l.length + 4, 2);
  let lines = 0;
  let longest = 0;
  for (const m of metrics) {
    if (m.buckets) {
      lines += m.buckets.length + 3;
      const le = Math.max(4, ...m.buckets.map((b) => String(b).length)) + 6;
      longest = Math.max(longest, m.name.length + '_bucket'.length + le);
    } else {
      lines += 1;
      longest = Math.max(longest, m.name.length);
    }
  }
  return { lines, lineBytes: longest + labels + VALUE_BYTES };
}

/** Bytes of a label value in the text format (backslash, double quote and newline are escaped). */
function escapedBytes(value: string): number {
  let extra = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x5c || c === 0x22 || c === 0x0a) extra++;
  }
  return Buffer.byteLength(value) + extra;
}

/** The value cut to `max` code units, the last one TRUNCATED (a surrogate pair is never split). */
function cut(value: string, max: number): string {
  let end = max - 1;
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return value.slice(0, end) + TRUNCATED;
}

/**
 * Creates the limits: label values cut to `maxLabelLength`, label sets capped per family, and the
 * text they take in /metrics (estimated from the shape when a label set is made) capped across
 * families, so hostile span names or descriptor values cannot grow /metrics past a bound.
 * Refusals are counted in `heimdall_metrics_overflow_total{family,reason}` and logged once per
 * family and reason.
 */
export function createSeriesLimits(options: SeriesLimitsOptions): SeriesLimits {
  const logger = options.logger.child({ component: 'metrics' });
  const registers = [options.metrics];
  const overflowed = new Counter({ name: 'heimdall_metrics_overflow_total', help: 'Observations counted under the __overflow__ label set, by family and reason (series: the family cap; size: the /metrics size budget).', labelNames: ['family', 'reason'] as const, registers });
  const truncated = new Counter({ name: 'heimdall_metrics_truncated_label_values_total', help: 'Label values cut to the length limit (counted when their label set is made), by family.', labelNames: ['family'] as const, registers });
  let used = 0;
  new Gauge({
    name: 'heimdall_metrics_series_bytes',
    help: 'Bytes of /metrics text the label sets of client-labelled families may take now (estimated), of telemetry.metrics.max_size.',
    registers,
    collect() {
      this.set(used);
    },
  });
  const max = options.maxLabelLength;

  return {
    family<T>(f: FamilyOptions<T>): BoundedFamily<T> {
      const series = new Map<string, T>();
      const cost = (values: readonly string[]): number => f.shape.lines * (f.shape.lineBytes + values.reduce((n, v) => n + escapedBytes(v), 0));
      const labelsOf = (values: readonly string[]): Record<string, string> => Object.fromEntries(f.labelNames.map((l, i) => [l, values[i] ?? '']));
      const overflowValues = f.labelNames.map(() => OVERFLOW);
      // The overflow set is always there to count into: its bytes are taken up front.
      used += cost(overflowValues);
      const overflow = f.bind(labelsOf(overflowValues));
      const refused = { series: overflowed.labels({ family: f.name, reason: 'series' }), size: overflowed.labels({ family: f.name, reason: 'size' }) };
      const warned = new Set<'series' | 'size'>();
      const refuse = (reason: 'series' | 'size'): T => {
        refused[reason].inc();
        if (!warned.has(reason)) {
          warned.add(reason);
          logger.warn({ family: f.name, maxSeries: f.maxSeries, maxBytes: options.maxBytes }, reason === 'series' ? 'metric family reached its series cap; further label sets count as __overflow__' : '/metrics reached its size budget; further label sets count as __overflow__');
        }
        return overflow;
      };
      return {
        get(raw) {
          let values = raw;
          let cuts = 0;
          for (const v of raw) if (v.length > max) cuts++;
          if (cuts > 0) values = raw.map((v) => (v.length > max ? cut(v, max) : v));
          const key = values.join('\u0000');
          const found = series.get(key);
          if (found !== undefined) return found;
          if (series.size >= f.maxSeries) return refuse('series');
          const bytes = cost(values);
          if (used + bytes > options.maxBytes) return refuse('size');
          used += bytes;
          if (cuts > 0) truncated.inc({ family: f.name }, cuts);
          const bound = f.bind(labelsOf(values));
          series.set(key, bound);
          return bound;
        },
      };
    },
  };
}
