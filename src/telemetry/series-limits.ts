import type { Config } from '../config/schema.js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from './logger.js';

/** Ends a label value cut to the length limit. */
export const TRUNCATED = '…';
/** Every label of the label set that counts what a family's bounds refused (and the reporter's overflow entity). */
export const OVERFLOW = '__overflow__';

/** Options for createSeriesLimits. */
export interface SeriesLimitsOptions {
  /**
   * Of `telemetry.metrics`: `max_label_length`, the longest label value kept, in bytes as /metrics
   * writes it (UTF-8, escaped; a longer one is cut to it, ending with TRUNCATED), and
   * `max_family_size`, the bytes of /metrics text the label sets of one limited family may take.
   */
  config: Pick<Config['telemetry']['metrics'], 'max_label_length' | 'max_family_size'>;
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
  /** Label sets from clients kept at most; later ones count under the overflow set. */
  maxSeries: number;
  shape: SeriesShape;
  /** Makes the metric children of one label set. */
  bind(labels: Record<string, string>): T;
}

/** The label sets of one family, bounded. */
export interface BoundedFamily<T> {
  /**
   * The children for these label values from a client (in labelNames order), each cut to the length
   * limit; the overflow set's once the family holds maxSeries such label sets or its size budget is spent.
   */
  get(values: readonly string[]): T;
  /**
   * The children for label values that come from the agent's configuration only (a configured
   * limit's place, a configured domain): cut like the others, but outside the family's cap and
   * budget, since the configuration bounds them. Clients can never make them overflow.
   */
  configured(values: readonly string[]): T;
}

/** Bounds of every metric family whose label values come from clients, each family apart. */
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

/**
 * Bytes of /metrics text one label set of a family takes at most: every label value at the length
 * limit. A family's cap times this is what its label sets can take, whatever clients send.
 */
export function worstSeriesBytes(shape: SeriesShape, labels: number, maxLabelLength: number): number {
  return shape.lines * (shape.lineBytes + labels * maxLabelLength);
}

/** Bytes of one character (code point) in a label value in the text format: UTF-8, with backslash, double quote and newline escaped. */
function charBytes(code: number): number {
  if (code === 0x5c || code === 0x22 || code === 0x0a) return 2;
  return code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
}

/** Bytes of a label value in the text format. */
function escapedBytes(value: string): number {
  let n = 0;
  for (const c of value) n += charBytes(c.codePointAt(0) ?? 0);
  return n;
}

const TRUNCATED_BYTES = Buffer.byteLength(TRUNCATED);

/** Whether the value takes more than `max` bytes in the text format (counted only when its length cannot tell). */
function tooLong(value: string, max: number): boolean {
  if (value.length * 3 <= max) return false;
  return value.length > max || escapedBytes(value) > max;
}

/** The value cut to at most `max` bytes in the text format, TRUNCATED last (a character is never split). */
function cut(value: string, max: number): string {
  let bytes = TRUNCATED_BYTES;
  let end = 0;
  for (const c of value) {
    bytes += charBytes(c.codePointAt(0) ?? 0);
    if (bytes > max) break;
    end += c.length;
  }
  return value.slice(0, end) + TRUNCATED;
}

/**
 * Items by exactly `depth` (> 0) label values: one nested map a value, so a lookup neither joins nor
 * allocates. Other lengths are never found nor added.
 */
function createValueTree<T>(depth: number): { find(values: readonly string[]): T | undefined; add(values: readonly string[], item: T): void } {
  const root = new Map<string, unknown>();
  return {
    find(values) {
      if (values.length !== depth || depth === 0) return undefined;
      let level: unknown = root;
      for (let i = 0; i < depth && level !== undefined; i++) level = (level as Map<string, unknown>).get(values[i] ?? '');
      return level as T | undefined;
    },
    add(values, item) {
      if (values.length !== depth || depth === 0) return;
      let level = root;
      for (let i = 0; i < depth - 1; i++) {
        const v = values[i] ?? '';
        let next = level.get(v) as Map<string, unknown> | undefined;
        if (!next) level.set(v, (next = new Map()));
        level = next;
      }
      level.set(values[depth - 1] ?? '', item);
    },
  };
}

/**
 * Creates the limits: label values cut to `maxLabelLength` bytes, and per family a cap on label
 * sets from clients and on the text they take in /metrics (estimated from the shape when a label
 * set is made), so hostile span names or descriptor values cannot grow /metrics past a bound, and
 * one family filling up never costs another its series. Refusals are counted in
 * `heimdall_metrics_overflow_total{family,reason}` and logged once per family and reason.
 */
export function createSeriesLimits(options: SeriesLimitsOptions): SeriesLimits {
  const logger = options.logger.child({ component: 'metrics' });
  const registers = [options.metrics];
  const overflowed = new Counter({ name: 'heimdall_metrics_overflow_total', help: 'Observations counted under the __overflow__ label set, by family and reason (series: the family cap; size: the family size budget).', labelNames: ['family', 'reason'] as const, registers });
  const truncated = new Counter({ name: 'heimdall_metrics_truncated_label_values_total', help: 'Label values cut to the length limit (counted when their label set is made), by family.', labelNames: ['family'] as const, registers });
  const used = new Map<string, number>();
  new Gauge({
    name: 'heimdall_metrics_series_bytes',
    help: 'Bytes of /metrics text the label sets of a client-labelled family may take now (estimated), of telemetry.metrics.max_family_size, by family.',
    labelNames: ['family'] as const,
    registers,
    collect() {
      for (const [family, bytes] of used) this.set({ family }, bytes);
    },
  });
  const max = options.config.max_label_length;
  /** The values cut to the length limit, and how many were cut. */
  const limited = (raw: readonly string[]): { values: readonly string[]; cuts: number } => {
    let cuts = 0;
    for (const v of raw) if (tooLong(v, max)) cuts++;
    return { values: cuts > 0 ? raw.map((v) => (tooLong(v, max) ? cut(v, max) : v)) : raw, cuts };
  };

  return {
    family<T>(f: FamilyOptions<T>): BoundedFamily<T> {
      const series = new Map<string, T>();
      const configured = new Map<string, T>();
      // Label sets get has returned, found again without joining their values (none with a value cut: no long text kept).
      const known = createValueTree<T>(f.labelNames.length);
      const cost = (values: readonly string[]): number => f.shape.lines * (f.shape.lineBytes + values.reduce((n, v) => n + escapedBytes(v), 0));
      const labelsOf = (values: readonly string[]): Record<string, string> => Object.fromEntries(f.labelNames.map((l, i) => [l, values[i] ?? '']));
      const overflowValues = f.labelNames.map(() => OVERFLOW);
      // The overflow set is always there to count into: its bytes are taken up front.
      let bytes = cost(overflowValues);
      used.set(f.name, bytes);
      const overflow = f.bind(labelsOf(overflowValues));
      const refused = { series: overflowed.labels({ family: f.name, reason: 'series' }), size: overflowed.labels({ family: f.name, reason: 'size' }) };
      const warned = new Set<'series' | 'size'>();
      const refuse = (reason: 'series' | 'size'): T => {
        refused[reason].inc();
        if (!warned.has(reason)) {
          warned.add(reason);
          logger.warn({ family: f.name, maxSeries: f.maxSeries, maxBytes: options.config.max_family_size }, reason === 'series' ? 'metric family reached its series cap; further label sets count as __overflow__' : 'metric family reached its size budget (telemetry.metrics.max_family_size); further label sets count as __overflow__');
        }
        return overflow;
      };
      const make = (values: readonly string[], cuts: number): T => {
        if (cuts > 0) truncated.inc({ family: f.name }, cuts);
        return f.bind(labelsOf(values));
      };
      return {
        get(raw) {
          const seen = known.find(raw);
          if (seen !== undefined) return seen;
          const { values, cuts } = limited(raw);
          const key = values.join('\u0000');
          const found = series.get(key) ?? configured.get(key);
          if (found !== undefined) {
            if (cuts === 0) known.add(raw, found);
            return found;
          }
          if (series.size >= f.maxSeries) return refuse('series');
          const size = cost(values);
          if (bytes + size > options.config.max_family_size) return refuse('size');
          bytes += size;
          used.set(f.name, bytes);
          const bound = make(values, cuts);
          series.set(key, bound);
          if (cuts === 0) known.add(raw, bound);
          return bound;
        },
        configured(raw) {
          const { values, cuts } = limited(raw);
          const key = values.join('\u0000');
          const found = configured.get(key) ?? series.get(key);
          if (found !== undefined) return found;
          const bound = make(values, cuts);
          configured.set(key, bound);
          return bound;
        },
      };
    },
  };
}
