/** Values for ClickHouse query parameters: `{name:Type}` placeholders in the SQL. */
export type QueryParams = Record<string, string | number | boolean | null | readonly unknown[] | Record<string, unknown>>;

/** The encoding of inserted bytes: JSONEachRow, or RowBinary with its column list. */
export type InsertFormat = { format: 'JSONEachRow'; columns?: undefined } | { format: 'RowBinary'; columns: readonly string[] };

/** Options for one insert. */
export interface InsertOptions {
  /** How the bytes are encoded (default JSONEachRow); RowBinary needs `columns`, in the rows' order. */
  format?: InsertFormat['format'];
  columns?: readonly string[] | undefined;
  /**
   * Deduplication token: ClickHouse drops a repeated insert with the same token into the same
   * table, so a retried batch is stored once (`insert_deduplication_token`).
   */
  dedupToken?: string;
}

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
  /** Runs a SELECT and returns its rows as objects (64-bit integers as strings). */
  query<T = Record<string, unknown>>(sql: string, params?: QueryParams): Promise<T[]>;
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

/** A column list for an INSERT: each name quoted (nested columns such as `Events.Name` have dots). */
export function insertColumnList(columns: readonly string[]): string {
  return columns.map((c) => `\`${c.replace(/[`\\]/g, '')}\``).join(', ');
}

/**
 * The SETTINGS clause carrying a deduplication token, for inserts whose settings go in the SQL. The
 * token is Heimdall's own (a UUID or queue position), never user input; anything else is refused.
 */
export function dedupSetting(token: string | undefined): string {
  if (token === undefined) return '';
  if (!/^[\w:.-]+$/.test(token)) throw new Error(`invalid deduplication token ${JSON.stringify(token)}`);
  return ` SETTINGS insert_deduplication_token = '${token}'`;
}
