/**
 * Just enough of PromQL and of the Prometheus text format for dashboard tests: which Heimdall
 * metrics an expression selects with which labels, and which labels each family of a /metrics
 * scrape has. Whether an expression parses is promtool's business (`promtoolCheckRules`).
 */
import type { Registry } from 'prom-client';

/** A metric selector of a PromQL expression: the metric's name and the label names its matchers use. */
export interface Selector {
  metric: string;
  labels: string[];
}

/** Aggregations and keywords: never metric names. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
/** Clauses whose parentheses hold label names. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The selectors of a PromQL expression and the labels of its by/without/on/ignoring/group_* clauses:
 * a tokenizer that skips strings, ranges, numbers, durations and calls (enough for rule files and
 * dashboard queries).
 */
export function parsePromql(expr: string): { selectors: Selector[]; grouping: string[] } {
  const text = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/\[[^\]]*\]/g, '');
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  const token = /(\d[\w.]*)|([A-Za-z_:][\w:]*)\s*([({])?|\{/g;
  for (let m = token.exec(text); m; m = token.exec(text)) {
    const [, number, name, next] = m;
    if (number !== undefined) continue;
    if (name === undefined) throw new Error(`a selector without a metric name in: ${expr}`);
    if (next === '(') {
      if (!GROUPING.has(name)) continue;
      const close = text.indexOf(')', token.lastIndex);
      grouping.push(...text.slice(token.lastIndex, close).split(',').map((l) => l.trim()).filter((l) => l !== ''));
      token.lastIndex = close + 1;
      continue;
    }
    if (KEYWORDS.has(name.toLowerCase())) continue;
    let labels: string[] = [];
    if (next === '{') {
      const close = text.indexOf('}', token.lastIndex);
      labels = [...text.slice(token.lastIndex, close).matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1] ?? '');
      token.lastIndex = close + 1;
    }
    selectors.push({ metric: name, labels });
  }
  return { selectors, grouping };
}

/** For each metric family of a /metrics text: its type and the label names its samples carry. */
export type Families = Map<string, { type: string; labels: Set<string> }>;

/** Parses the families of a Prometheus text exposition (`_bucket`, `_sum`, `_count` samples count for their histogram). */
export function parseFamilies(text: string): Families {
  const families: Families = new Map();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) families.set(type[1] ?? '', { type: type[2] ?? '', labels: new Set() });
    const sample = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? /.exec(line);
    if (!sample || line.startsWith('#')) continue;
    const name = sample[1] ?? '';
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
    for (const l of (sample[3] ?? '').matchAll(/(\w+)="/g)) family?.labels.add(l[1] ?? '');
  }
  return families;
}

/** The family a selected metric name belongs to (a histogram's `_bucket`, `_sum` and `_count`, a summary's `_sum` and `_count` belong to it). */
export function familyOf(families: Families, metric: string): string | undefined {
  if (families.has(metric)) return metric;
  const base = metric.replace(/_(bucket|sum|count)$/, '');
  return ['histogram', 'summary'].includes(families.get(base)?.type ?? '') ? base : undefined;
}

/**
 * The label names of a family: those its samples carry, or for a family without samples yet (a
 * fault the agent did not have) the names its prom-client metric declares in `registry`, which
 * are what /metrics will show.
 */
export function familyLabels(families: Families, family: string, registry: Registry): Set<string> {
  const seen = families.get(family)?.labels ?? new Set<string>();
  if (seen.size > 0) return seen;
  return new Set((registry.getSingleMetric(family) as unknown as { labelNames?: string[] } | undefined)?.labelNames ?? []);
}
