/**
 * Just enough of PromQL and of the Prometheus text format for dashboard tests: which Heimdall
 * metrics an expression selects with which labels, and which labels each family of a /metrics
 * scrape has. Whether an expression parses is promtool's business (`promtoolCheckRules`).
 */

/** A selector of one of Heimdall's metrics in an expression: its name and the labels it matches on. */
export interface Selector {
  metric: string;
  labels: string[];
}

/** The `heimdall_*` metrics an expression selects, with the label names of their matchers. */
export function selectorsOf(expr: string): Selector[] {
  return [...expr.matchAll(/\b(heimdall_\w+)\s*(\{([^}]*)\})?/g)].map((m) => ({
    metric: m[1] ?? '',
    labels: [...(m[3] ?? '').matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1] ?? ''),
  }));
}

/** The label names of the expression's `by`, `without`, `on`, `ignoring`, `group_left` and `group_right` clauses. */
export function groupingLabelsOf(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '')
      .split(',')
      .map((l) => l.trim())
      .filter((l) => l !== ''),
  );
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

/** The family a selected metric name belongs to (a histogram's `_bucket`, `_sum` and `_count` belong to it). */
export function familyOf(families: Families, metric: string): string | undefined {
  if (families.has(metric)) return metric;
  const base = metric.replace(/_(bucket|sum|count)$/, '');
  return families.get(base)?.type === 'histogram' ? base : undefined;
}
