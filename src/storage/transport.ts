/** Values for ClickHouse query parameters: `{name:Type}` placeholders in the SQL. */
export type QueryParams = Record<string, string | number | boolean | null | readonly unknown[] | Record<string, unknown>>;

/** Options for one insert. */
export interface InsertOptions {
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
  /** Inserts rows, given as objects or as already encoded JSONEachRow bytes. */
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
