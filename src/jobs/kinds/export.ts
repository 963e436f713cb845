import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Counter } from 'prom-client';
import type { Config } from '../../config/schema.js';
import { formatMs, formatMsRoughly } from '../../config/units.js';
import { TENANT_ATTRIBUTE } from '../../ingest/processors/enrichment.js';
import { budgetSettings, limitHit, limitRefusal } from '../../storage/read-budget.js';
import type { Storage } from '../../storage/storage.js';
import { EVENTS, LOGS, TRACES, type TableWithRowId } from '../../storage/tables.js';
import { parseJsonLines, type QueryParams, type QuerySettings } from '../../storage/transport.js';
import type { Logger } from '../../telemetry/logger.js';
import type { TaskRunner } from './kind.js';
import { KIND_PARAMS, type KindParams } from './params.js';

type ExportParams = KindParams<'export'>;

/** A source of an export: its table, the columns written, and a unique order to page by (time, then the row id). */
interface Source {
  table: TableWithRowId;
  /** Select list; the first two output columns are the page key (time in ns as text, the table's row id). */
  select: string;
  filters: Partial<Record<keyof ExportParams['filters'], string>>;
  /** Only one tenant's rows (`{tenant:String}`, and `{tenant_key:String}` for the resource attribute). */
  tenant: string;
}

const SOURCES: Record<ExportParams['source'], Source> = {
  events: {
    table: EVENTS,
    select: `toString(toUnixTimestamp64Nano(Timestamp)) AS time_unix_nano, ${EVENTS.rowId.expr} AS id, TenantId AS tenant_id, Source AS source, EventType AS event_type, Severity AS severity, Category AS category,
      Message AS message, CorrelationId AS correlation_id, TraceId AS trace_id, SpanId AS span_id, ActorId AS actor_id, Status AS status, DurationMs AS duration_ms, Payload AS payload`,
    filters: { event_type: 'EventType = {event_type:String}', source: 'Source = {source:String}', min_severity: 'Severity >= {min_severity:UInt8}' },
    tenant: 'TenantId = {tenant:String}',
  },
  logs: {
    table: LOGS,
    // The record's id as query answers show it (a hash of the record).
    select: `toString(toUnixTimestamp64Nano(Timestamp)) AS time_unix_nano, toString(${LOGS.rowId.expr}) AS row_hash,
      ServiceName AS service_name, SeverityText AS severity_text, SeverityNumber AS severity_number, Body AS body, TraceId AS trace_id, SpanId AS span_id, ResourceAttributes AS resource_attributes, LogAttributes AS log_attributes`,
    filters: { service_name: 'ServiceName = {service_name:String}', min_severity: 'SeverityNumber >= {min_severity:UInt8}' },
    tenant: 'ResourceAttributes[{tenant_key:String}] = {tenant:String}',
  },
  spans: {
    table: TRACES,
    select: `toString(toUnixTimestamp64Nano(Timestamp)) AS time_unix_nano, ${TRACES.rowId.expr} AS span_id, TraceId AS trace_id, ParentSpanId AS parent_span_id, ServiceName AS service_name, SpanName AS span_name,
      SpanKind AS span_kind, Duration AS duration_ns, StatusCode AS status_code, StatusMessage AS status_message, ResourceAttributes AS resource_attributes, SpanAttributes AS span_attributes`,
    filters: { service_name: 'ServiceName = {service_name:String}' },
    tenant: 'ResourceAttributes[{tenant_key:String}] = {tenant:String}',
  },
};

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, quote or line break; objects as JSON.
 * Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage
 * return, as OWASP lists) gets a leading `'` and is quoted; plain numbers such as `-5` stay as they are.
 */
function csvField(v: unknown): string {
  let s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  const formula = typeof v === 'string' && /^[=+\-@\t\r]/.test(s) && !/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s);
  if (formula) s = `'${s}`;
  return formula || /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A chunk of the export: the text to write, its row count, and its last row (whose first two values are the next chunk's key). */
interface Chunk {
  text: string;
  rows: number;
  last: Record<string, unknown>;
}

/** JSONEachRow text written as it is: rows counted by line (strings never hold a raw newline), only the last parsed. */
function jsonChunk(lines: string): Chunk {
  let rows = 0;
  for (let i = lines.indexOf('\n'); i !== -1; i = lines.indexOf('\n', i + 1)) rows += 1;
  return { text: lines, rows, last: JSON.parse(lines.slice(lines.lastIndexOf('\n', lines.length - 2) + 1)) as Record<string, unknown> };
}

/** JSONEachRow text as CSV rows, the header row first when `header`. */
function csvChunk(lines: string, header: boolean): Chunk {
  const rows = parseJsonLines(lines);
  const last = rows[rows.length - 1] ?? {};
  let text = header ? `${Object.keys(last).map(csvField).join(',')}\n` : '';
  for (const r of rows) text += `${Object.values(r).map(csvField).join(',')}\n`;
  return { text, rows: rows.length, last };
}

/**
 * The time range an export reads, ms since the epoch ([start, end): end `now` unless given, start
 * `since` before it unless given), or why it is refused: wider than query.max_window, naming the parameter.
 */
export function exportWindow(p: ExportParams, now: number, maxWindowMs: number): { start: number; end: number } | { refused: string } {
  const end = p.end ? Date.parse(p.end) : now;
  const start = p.start ? Date.parse(p.start) : end - p.since;
  if (end - start <= maxWindowMs) return { start, end };
  return { refused: `${p.start ? 'start' : 'since'}: the window is at most ${formatMs(maxWindowMs)} (query.max_window), got ${formatMsRoughly(end - start)}; export several narrower windows` };
}

/** Why a task's export would read more than `maxWindowMs` (naming the parameter, for INVALID_ARGUMENT), or undefined (also for other kinds). */
export function exportWindowRefusal(task: { kind: string; params: Record<string, unknown> }, now: number, maxWindowMs: number): string | undefined {
  if (task.kind !== 'export') return undefined;
  const range = exportWindow(KIND_PARAMS.export.parse(task.params), now, maxWindowMs);
  return 'refused' in range ? `job.params.${range.refused}` : undefined;
}

/**
 * The folder of a tenant's exports in the export directory: `tenant=<tenant>`, or `tenant=_<digest>`
 * when the tenant is not a plain file name. Export file names have no "=", so these never meet them.
 */
export function tenantFolder(tenant: string): string {
  return `tenant=${/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(tenant) ? tenant : `_${createHash('sha256').update(tenant).digest('hex').slice(0, 32)}`}`;
}

/** What an export may use: storage, its directory and byte budgets, and the query budgets its storage queries run under. */
export interface ExportDeps {
  storage: Storage;
  exportDir: string;
  /** Bytes the export directory may hold, tenant folders included (`jobs.export_max_size`). */
  maxBytes: number;
  /** Bytes one tenant's folder may hold (`jobs.tenant_export_max_size`). */
  tenantMaxBytes: number;
  /** The `query` section: time, memory and read limits of the export's storage queries, and its widest window. */
  query: Config['query'];
  /** Export runs failed by a limit, by limit. */
  refused: Counter<'limit'>;
}

/** The WHERE clauses and parameters of an export: its window, its filters, and its tenant. */
function exportFilter(p: ExportParams, src: Source, range: { start: number; end: number }): { where: string[]; params: QueryParams } {
  const params: QueryParams = { start: BigInt(range.start) * 1_000_000n + '', end: BigInt(range.end) * 1_000_000n + '', chunk: p.chunk_rows };
  const where = ['Timestamp >= fromUnixTimestamp64Nano({start:Int64})', 'Timestamp < fromUnixTimestamp64Nano({end:Int64})'];
  for (const [k, v] of Object.entries(p.filters)) {
    const clause = src.filters[k as keyof ExportParams['filters']];
    if (v === undefined || !clause) continue;
    where.push(clause);
    params[k] = v;
  }
  if (p.tenant !== undefined) {
    where.push(src.tenant);
    Object.assign(params, { tenant: p.tenant, tenant_key: TENANT_ATTRIBUTE });
  }
  return { where, params };
}

/** A part file of an export run under the byte budgets: written a chunk at a time, then renamed over its file or removed. */
export interface PartFile {
  /** Writes `text`, failing the run (counted) when the directory or the tenant's folder would pass its budget. */
  write(text: string): Promise<void>;
  /** Ends the part file and renames it to the file (replacing it). */
  commit(): Promise<void>;
  /** Drops the part file (the run failed or was cancelled), once the stream has closed it. */
  abort(): Promise<void>;
}

/**
 * The part file `<file>.<run id>.part`: one per run, so two runs writing the same file never mix (the
 * last to finish wins). The export directory has a budget (it may share a size-limited volume with
 * the store), and each tenant's folder its own share: checked before every chunk, with every file
 * counted, so concurrent exports share them too.
 */
export function openPartFile(deps: Pick<ExportDeps, 'exportDir' | 'maxBytes' | 'tenantMaxBytes'>, p: { file: string; dir: string; runId: string; tenant: string | undefined }, refuse: (limit: string, message: string) => never): PartFile {
  const part = `${p.file}.${p.runId}.part`;
  const out = createWriteStream(part);
  return {
    async write(text) {
      const bytes = Buffer.byteLength(text);
      const used = directoryBytes(deps.exportDir) + out.writableLength;
      if (used + bytes > deps.maxBytes) {
        refuse('export_max_size', `the export directory would pass jobs.export_max_size (${deps.maxBytes} bytes: ${used} used, ${bytes} more needed): remove old exports, export a shorter window, or raise it`);
      }
      const tenantUsed = p.tenant !== undefined ? directoryBytes(p.dir) + out.writableLength : 0;
      if (p.tenant !== undefined && tenantUsed + bytes > deps.tenantMaxBytes) {
        refuse('tenant_export_max_size', `the export folder of tenant ${JSON.stringify(p.tenant)} would pass jobs.tenant_export_max_size (${deps.tenantMaxBytes} bytes: ${tenantUsed} used, ${bytes} more needed): remove its old exports, or export a shorter window`);
      }
      if (!out.write(text)) await once(out, 'drain');
    },
    async commit() {
      out.end();
      await once(out, 'finish');
      renameSync(part, p.file);
    },
    async abort() {
      // The stream opens its file asynchronously: a run refused at its first chunk may get here before
      // the file exists. Removed only once the stream is closed, so the open cannot recreate it after.
      if (!out.closed) {
        const closed = once(out, 'close');
        out.destroy();
        await closed.catch(() => undefined); // a write error already failed the run
      }
      rmSync(part, { force: true });
    },
  };
}

/**
 * The `export` task: counts the rows of the query, then reads them in key order, a chunk at a time
 * (keyset paging, so each chunk costs the same), writing JSON lines (the engine's own text) or CSV to `<file>.<run id>.part`
 * and reporting progress after every chunk; renamed to `<file>` (replacing it) when complete, removed when the run is
 * cancelled or fails. Filters travel as query parameters. An export of one tenant's rows is written
 * in that tenant's folder, under that folder's budget as well as the directory's. Its window is at
 * most query.max_window, and every storage query runs under query.timeout (the count also under
 * query.max_memory); one stopped by a budget fails the run with a message naming it.
 */
export function createExport(deps: ExportDeps): TaskRunner {
  // A chunk's memory is the rows it returns (read in key order, chunk_rows at most), not query.max_memory's to bound.
  const settings = { count: budgetSettings(deps.query), chunk: budgetSettings(deps.query, { memory: false }) };
  /** Fails the run, counting the limit. */
  const refuse = (limit: string, message: string): never => {
    deps.refused.inc({ limit });
    throw new Error(message);
  };
  /** A storage query; one the engine stopped at a budget fails the run naming it. */
  const budgeted = async <T>(query: (settings: QuerySettings) => Promise<T>, which: QuerySettings): Promise<T> => {
    try {
      return await query(which);
    } catch (err) {
      const limit = limitHit(err);
      if (limit) refuse(limit, limitRefusal(limit, deps.query).message);
      throw err;
    }
  };
  return async (raw, ctx) => {
    const p = KIND_PARAMS.export.parse(raw);
    if (!deps.storage.ready) throw new Error('storage is not ready');
    const t = deps.storage.transport;
    const src = SOURCES[p.source];
    const key = `(Timestamp, ${src.table.rowId.expr})`;
    const range = exportWindow(p, Date.now(), deps.query.max_window);
    if ('refused' in range) return refuse('max_window', range.refused);
    const { where, params } = exportFilter(p, src, range);
    const [count] = await budgeted((s) => t.query<{ n: string }>(`SELECT count() AS n FROM ${src.table.name} WHERE ${where.join(' AND ')}`, params, s), settings.count);
    const total = Number(count?.n ?? 0);
    // One tenant's rows go to its folder: tenants never replace each other's files.
    const dir = p.tenant !== undefined ? join(deps.exportDir, tenantFolder(p.tenant)) : deps.exportDir;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, p.file ?? `${ctx.runId}.${p.format}`);
    const out = openPartFile(deps, { file, dir, runId: ctx.runId, tenant: p.tenant }, refuse);
    let written = 0;
    try {
      let after: [string, string] | undefined;
      let header = p.format === 'csv';
      ctx.progress(0, `exporting ${total} rows of ${p.source}`);
      for (;;) {
        ctx.signal.throwIfAborted();
        const page = after ? ` AND ${key} > (fromUnixTimestamp64Nano({after_time:Int64}), {after_key:${src.table.rowId.type}})` : '';
        const pageParams = after ? { ...params, after_time: after[0], after_key: after[1] } : params;
        // The engine's JSON lines are written as they come; CSV is made from the parsed rows.
        const lines = await budgeted(
          (s) => t.queryText(`SELECT ${src.select} FROM ${src.table.name} WHERE ${where.join(' AND ')}${page} ORDER BY ${key} LIMIT {chunk:UInt32} SETTINGS output_format_json_escape_forward_slashes = 0`, pageParams, s),
          settings.chunk,
        );
        if (lines === '') break;
        ctx.signal.throwIfAborted();
        const chunk = p.format === 'csv' ? csvChunk(lines, header) : jsonChunk(lines);
        header = false;
        await out.write(chunk.text);
        written += chunk.rows;
        const last = Object.values(chunk.last);
        after = [String(last[0]), String(last[1])];
        ctx.progress(total > 0 ? Math.min(99, Math.floor((written / total) * 100)) : 99, `wrote ${written} of ${total} rows`);
        if (chunk.rows < p.chunk_rows) break;
      }
      await out.commit();
    } catch (err) {
      await out.abort();
      throw err;
    }
    return { message: `wrote ${written} rows of ${p.source} to ${file}`, result: { file, format: p.format, rows: written, bytes: statSync(file).size } };
  };
}

/** Bytes of the files in a directory and its subdirectories (tenant folders); 0 when it does not exist. */
export function directoryBytes(dir: string): number {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0; // absent, or removed meanwhile
  }
  let bytes = 0;
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      bytes += directoryBytes(path);
      continue;
    }
    if (!entry.isFile()) continue;
    try {
      bytes += statSync(path).size;
    } catch {
      // Renamed or removed meanwhile (another export finishing): not there any more.
    }
  }
  return bytes;
}

/** Part files of export runs that are not live here (left by a crash), in the export directory and its tenant folders: removed at start. */
export function removeStaleParts(exportDir: string, isLive: (runId: string) => boolean, logger: Logger): void {
  if (!existsSync(exportDir)) return;
  for (const entry of readdirSync(exportDir, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name.startsWith('tenant=')) {
      removeStaleParts(join(exportDir, entry.name), isLive, logger);
      continue;
    }
    const id = /\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.part$/.exec(entry.name)?.[1];
    if (!id || isLive(id)) continue;
    rmSync(join(exportDir, entry.name), { force: true });
    logger.info({ file: join(exportDir, entry.name) }, 'removed the part file of an export that did not finish');
  }
}
