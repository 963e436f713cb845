/**
 * What Grafana and its ClickHouse data source plugin do to a dashboard query before ClickHouse
 * sees it, re-implemented (not copied) from their sources so that dashboard tests can run the
 * exact SQL against a real store:
 *
 * 1. `$__conditionalAll(condition, $var)`: the plugin's frontend (grafana/clickhouse-datasource
 *    `src/data/CHDatasource.ts`, `applyConditionalAll`, applied first in `applyTemplateVariables`)
 *    replaces each occurrence, last first, by `1=1` when the variable's current value is empty or
 *    `$__all`, else by the condition. Arguments split at the commas outside parentheses.
 * 2. Template variables: Grafana's `templateSrv.replace` with the plugin's default format (an
 *    array becomes `'a','b'`, a single value is inserted raw); `${var:singlequote}` quotes every
 *    value and escapes `'` as `\'` (grafana/grafana `formatRegistry.ts`); `${var:raw}` joins with
 *    commas. `$__all` stands for every option of the variable. Built-ins: `${__from}` and
 *    `${__to}` (epoch milliseconds), `${__from:date:seconds}`, `${__to:date:seconds}`,
 *    `$__interval_ms`. Names Grafana does not know (the macros below) are left alone.
 * 3. Macros: the plugin's backend (grafana/clickhouse-datasource `pkg/macros/macros.go`, v4.20),
 *    with `from`/`to` the time range and `interval` the panel interval:
 *    - `$__timeFilter(c)` → `c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)`
 *    - `$__timeFilter_ms(c)` → `c >= fromUnixTimestamp64Milli(<from ms>) AND c <= fromUnixTimestamp64Milli(<to ms>)`
 *    - `$__dateFilter(c)` → `c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')` (UTC dates)
 *    - `$__dateTimeFilter(d, t)`, `$__dt(d, t)` → `(date filter on d) AND (time filter on t)`, each in parentheses
 *    - `$__fromTime`, `$__toTime` → `toDateTime(<s>)`; `$__fromTime_ms`, `$__toTime_ms` → `fromUnixTimestamp64Milli(<ms>)`
 *    - `$__timeFrom(c)` → `c >= toDateTime(<from s>)`; `$__timeTo(c)` → `c <= toDateTime(<to s>)`
 *    - `$__timeInterval(c)` → `toStartOfInterval(toDateTime(c), INTERVAL <max(interval s, 1)> second)`
 *    - `$__timeInterval_ms(c)` → `toStartOfInterval(toDateTime64(c, 3), INTERVAL <max(interval ms, 1)> millisecond)`
 *    - `$__interval_s` → `<max(interval s, 1)>` (whole seconds)
 *    A macro with the wrong number of arguments, or any other `$__name` left over, throws: the
 *    plugin would refuse the query too (or send SQL ClickHouse refuses).
 */

/** A template variable's current value and, for `$__all`, the values it stands for. */
export interface GrafanaVariable {
  value: string | string[];
  /** Every option's value (what `$__all` expands to). */
  options?: string[];
}

/** What a query is expanded with: the dashboard's time range, the panel's interval and the variables. */
export interface QueryContext {
  from: Date;
  to: Date;
  intervalMs: number;
  variables: Record<string, GrafanaVariable>;
}

/** The arguments of a call whose `(` is at `open`, split at top-level commas, and the index after its `)`; undefined when unbalanced. */
function callArgs(text: string, open: number): { args: string[]; end: number } | undefined {
  let depth = 0;
  let start = open + 1;
  const args: string[] = [];
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === ',' && depth === 1) {
      args.push(text.slice(start, i));
      start = i + 1;
    } else if (depth === 0) {
      args.push(text.slice(start, i));
      return { args, end: i + 1 };
    }
  }
  return undefined;
}

/** Step 1: `$__conditionalAll(condition, $var)`, as the plugin's frontend expands it. */
export function applyConditionalAll(sql: string, variables: Record<string, GrafanaVariable>): string {
  const macro = '$__conditionalAll(';
  let out = sql;
  for (let at = out.lastIndexOf(macro); at !== -1; at = out.lastIndexOf(macro)) {
    const call = callArgs(out, at + macro.length - 1);
    if (!call || call.args.length !== 2) throw new Error(`$__conditionalAll takes 2 arguments: ${out.slice(at, at + 80)}`);
    const [condition, ref] = call.args as [string, string];
    const name = /\$\{(\w+)\}|\$(\w+)/.exec(ref.trim());
    const current = name ? variables[name[1] ?? name[2] ?? ''] : undefined;
    const value = current === undefined ? undefined : String(current.value);
    out = out.slice(0, at) + (value === '' || value === '$__all' ? '1=1' : condition) + out.slice(call.end);
  }
  return out;
}

const singleQuote = (v: string) => `'${v.replaceAll("'", "\\'")}'`;

/** The values a variable stands for (`$__all`: every option). */
function valuesOf(v: GrafanaVariable): string[] {
  const values = Array.isArray(v.value) ? v.value : [v.value];
  return values.length === 1 && values[0] === '$__all' ? (v.options ?? []) : values;
}

function formatValue(v: GrafanaVariable, format: string | undefined): string {
  const values = valuesOf(v);
  const many = Array.isArray(v.value) || values.length !== 1;
  switch (format) {
    case undefined:
      // The plugin's own format function: arrays quoted and joined, single values raw.
      return many ? `'${values.join("','")}'` : (values[0] ?? '');
    case 'singlequote':
      return values.map(singleQuote).join(',');
    case 'raw':
    case 'csv':
      return values.join(',');
    default:
      throw new Error(`variable format ${format} is not implemented here`);
  }
}

/** Step 2: Grafana's template variables (see the file comment). */
export function applyVariables(sql: string, ctx: QueryContext): string {
  const builtins: Record<string, string> = {
    __from: String(ctx.from.getTime()),
    __to: String(ctx.to.getTime()),
    '__from:date:seconds': String(Math.floor(ctx.from.getTime() / 1000)),
    '__to:date:seconds': String(Math.floor(ctx.to.getTime() / 1000)),
    __interval_ms: String(ctx.intervalMs),
  };
  return sql.replace(/\$\{(\w+)(?::([\w:]+))?\}|\$(\w+)/g, (whole, braced: string | undefined, format: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    const builtin = builtins[format ? `${name}:${format}` : name];
    if (builtin !== undefined) return builtin;
    const v = ctx.variables[name];
    return v === undefined ? whole : formatValue(v, format);
  });
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);
const dateTime = (d: Date) => `toDateTime(${seconds(d)})`;
const dateTime64 = (d: Date) => `fromUnixTimestamp64Milli(${d.getTime()})`;
const date = (d: Date) => `toDate('${d.toISOString().slice(0, 10)}')`;

/** The plugin's macros: each takes the trimmed arguments (none for the bare ones) and the context. */
const MACROS: Record<string, { args: number; expand: (a: string[], c: QueryContext) => string }> = {
  timeFilter: { args: 1, expand: ([c], x) => `${c} >= ${dateTime(x.from)} AND ${c} <= ${dateTime(x.to)}` },
  timeFilter_ms: { args: 1, expand: ([c], x) => `${c} >= ${dateTime64(x.from)} AND ${c} <= ${dateTime64(x.to)}` },
  dateFilter: { args: 1, expand: ([c], x) => `${c} >= ${date(x.from)} AND ${c} <= ${date(x.to)}` },
  dateTimeFilter: { args: 2, expand: ([d, t], x) => `(${d} >= ${date(x.from)} AND ${d} <= ${date(x.to)}) AND (${t} >= ${dateTime(x.from)} AND ${t} <= ${dateTime(x.to)})` },
  timeFrom: { args: 1, expand: ([c], x) => `${c} >= ${dateTime(x.from)}` },
  timeTo: { args: 1, expand: ([c], x) => `${c} <= ${dateTime(x.to)}` },
  fromTime: { args: 0, expand: (_, x) => dateTime(x.from) },
  toTime: { args: 0, expand: (_, x) => dateTime(x.to) },
  fromTime_ms: { args: 0, expand: (_, x) => dateTime64(x.from) },
  toTime_ms: { args: 0, expand: (_, x) => dateTime64(x.to) },
  timeInterval: { args: 1, expand: ([c], x) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${Math.max(Math.floor(x.intervalMs / 1000), 1)} second)` },
  timeInterval_ms: { args: 1, expand: ([c], x) => `toStartOfInterval(toDateTime64(${c}, 3), INTERVAL ${Math.max(x.intervalMs, 1)} millisecond)` },
  interval_s: { args: 0, expand: (_, x) => String(Math.max(Math.floor(x.intervalMs / 1000), 1)) },
};
MACROS.dt = MACROS.dateTimeFilter!;

/** Step 3: the plugin's backend macros (see the file comment). Throws on a macro it does not know. */
export function applyMacros(sql: string, ctx: QueryContext): string {
  let out = '';
  let rest = sql;
  for (let m = /\$__(\w+)/.exec(rest); m; m = /\$__(\w+)/.exec(rest)) {
    const name = m[1] ?? '';
    const macro = MACROS[name];
    if (!macro) throw new Error(`unknown macro $__${name}`);
    const after = m.index + m[0].length;
    const call = macro.args > 0 && rest[after] === '(' ? callArgs(rest, after) : undefined;
    const args = call ? call.args.map((a) => a.trim()) : [];
    if (args.length !== macro.args) throw new Error(`$__${name} takes ${macro.args} argument(s), got ${args.length}`);
    out += rest.slice(0, m.index) + macro.expand(args, ctx);
    rest = rest.slice(call ? call.end : after);
  }
  return out + rest;
}

/** A dashboard query as ClickHouse receives it: conditional alls, then variables, then macros. */
export function expandClickHouseQuery(sql: string, ctx: QueryContext): string {
  return applyMacros(applyVariables(applyConditionalAll(sql, ctx.variables), ctx), ctx);
}

/** A panel of a dashboard JSON model (only what the tests read). */
export interface GrafanaPanel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Array<Record<string, unknown> & { refId: string }>;
  panels?: GrafanaPanel[];
  fieldConfig?: { defaults?: { links?: unknown[] }; overrides?: Array<{ properties: Array<{ id: string; value: unknown }> }> };
}

/** A dashboard JSON model (only what the tests read). */
export interface GrafanaDashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: GrafanaPanel[];
  templating: { list: Array<Record<string, unknown> & { name: string; type: string }> };
}

/** Every panel of a dashboard, those inside rows included (rows themselves left out). */
export function panelsOf(d: GrafanaDashboard): GrafanaPanel[] {
  return d.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}
