/** Values for ClickHouse query parameters: `{name:Type}` placeholders in the SQL. */
export type QueryParams = Record<string, string | number | boolean | null | readonly unknown[] | Record<string, unknown>>;

/** Options for one insert. */
export interface InsertOptions {
  /** How the bytes are encoded (default JSONEachRow); RowBinary needs `columns`, in the rows' order. */
  format?: 'JSONEachRow' | 'RowBinary';
  columns?: readonly string[] | undefined;
  /**
   * Skip indexes not built by this insert but by the first merge of its part (each merge rebuilds
   * them anyway): `exclude_materialize_skip_indexes_on_insert`, where ClickHouse has it (25.x on).
   */
  deferredIndexes?: readonly string[] | undefined;
  /**
   * Deduplication token: ClickHouse drops a repeated insert with the same token into the same
   * table, so a retried batch is stored once (`insert_deduplication_token`).
   */
  dedupToken?: string;
}

/**
 * ClickHouse settings for one query (e.g. `max_execution_time`, `max_rows_to_read`): names and
 * values are Heimdall's own (numbers, or plain words such as `throw`), never user input.
 */
export type QuerySettings = Readonly<Record<string, number | string>>;

/**
 * One way of talking to ClickHouse. The embedded (chdb) and server (HTTP) transports run the same
 * SQL; user input only ever travels as query parameters, never in the SQL text.
 */
export interface StorageTransport {
  readonly kind: 'embedded' | 'server';
  /** Human-readable target (data directory or URL without credentials), for logs and status. */
  readonly target: string;
  /** Checks that storage answers, and on a server that the database exists. Throws StorageError. */
  ping(): Promise<void>;
  /** Runs a statement that returns no rows (DDL, ALTER, ...). */
  command(sql: string, params?: QueryParams): Promise<void>;
  /** Runs a SELECT and returns its rows as objects (64-bit integers as strings), with `settings` for this query only. */
  query<T = Record<string, unknown>>(sql: string, params?: QueryParams, settings?: QuerySettings): Promise<T[]>;
  /** Runs a SELECT and returns the engine's JSONEachRow text as it is: one JSON object per line, each line ending in `\n`. */
  queryText(sql: string, params?: QueryParams, settings?: QuerySettings): Promise<string>;
  /** Inserts rows, given as objects or as already encoded bytes (JSONEachRow unless `options.format` says otherwise). */
  insert(table: string, rows: readonly object[] | Uint8Array, options?: InsertOptions): Promise<void>;
  /** Waits for calls in flight, then releases the connection. Safe to call twice. */
  close(): Promise<void>;
}

/** Encodes rows as JSONEachRow: one JSON object per line. */
export function encodeJsonEachRow(rows: readonly object[]): Buffer {
  let out = '';
  for (const row of rows) out += `${JSON.stringify(row)}\n`;
  return Buffer.from(out);
}

/** Decodes JSONEachRow text (what queryText returns) into rows. */
export function parseJsonLines<T = Record<string, unknown>>(text: string): T[] {
  const rows: T[] = [];
  for (const line of text.split('\n')) if (line !== '') rows.push(JSON.parse(line) as T);
  return rows;
}

/** A column list for an INSERT: each name quoted (nested columns such as `Events.Name` have dots). */
export function insertColumnList(columns: readonly string[]): string {
  return columns.map((c) => `\`${c.replace(/[`\\]/g, '')}\``).join(', ');
}

/** The name of ClickHouse's setting for deferred skip indexes (absent before ClickHouse 25.x). */
export const DEFER_INDEXES_SETTING = 'exclude_materialize_skip_indexes_on_insert';

/**
 * The settings of an insert (deduplication token, deferred indexes, no partition cap) as ClickHouse settings. Their
 * values are Heimdall's own (a UUID or queue position, index names from the schema), never user
 * input; anything that is not a plain name is refused, so they can go into SQL text too.
 */
export function insertSettings(o: InsertOptions, deferSupported: boolean): Record<string, string> {
  // Client clocks decide the partition (one per day): a batch spanning more than 100 days must be
  // stored, not refused for good (ClickHouse's max_partitions_per_insert_block) or retried forever.
  const out: Record<string, string> = { throw_on_max_partitions_per_insert_block: '0' };
  const plain = (v: string): string => {
    if (!/^[\w:.,-]+$/.test(v)) throw new Error(`invalid insert setting value ${JSON.stringify(v)}`);
    return v;
  };
  if (o.dedupToken !== undefined) out.insert_deduplication_token = plain(o.dedupToken);
  if (deferSupported && o.deferredIndexes && o.deferredIndexes.length > 0) out[DEFER_INDEXES_SETTING] = plain(o.deferredIndexes.join(','));
  return out;
}

/** Insert settings as a SQL SETTINGS clause ("" when none). */
export function settingsClause(settings: Record<string, string>): string {
  const entries = Object.entries(settings);
  return entries.length === 0 ? '' : ` SETTINGS ${entries.map(([k, v]) => `${k} = '${v}'`).join(', ')}`;
}

/**
 * A SELECT with query settings in its text (for the embedded engine, which has no per-call
 * settings): added to the statement's own trailing SETTINGS clause when it has one. Names must be
 * plain identifiers and values numbers or plain words; anything else throws.
 */
export function withQuerySettings(sql: string, settings: QuerySettings | undefined): string {
  const entries = Object.entries(settings ?? {});
  if (entries.length === 0) return sql;
  const text = entries
    .map(([k, v]) => {
      if (!/^\w+$/.test(k) || !(typeof v === 'number' ? Number.isFinite(v) : /^\w+$/.test(v))) throw new Error(`invalid query setting ${k} = ${JSON.stringify(v)}`);
      return typeof v === 'number' ? `${k} = ${v}` : `${k} = '${v}'`;
    })
    .join(', ');
  const trimmed = sql.trimEnd();
  return /\sSETTINGS\s+[\w\s=',.]+$/.test(trimmed) ? `${trimmed}, ${text}` : `${trimmed} SETTINGS ${text}`;
}
