import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type * as Chdb from 'chdb';
import type { Session } from 'chdb';
import { chdbAbsence, chdbUnavailableMessage, platformKey, preloadedAllocator } from './chdb-unavailable.js';
import { StorageError, StorageUnavailableError, toStorageError } from './errors.js';
import { encodeJsonEachRow, insertColumnList, parseJsonLines, insertSettings, settingsClause, withQuerySettings, type InsertOptions, type QueryParams, type QuerySettings, type StorageTransport } from './transport.js';

/** Options for createEmbeddedTransport. */
export interface EmbeddedTransportOptions {
  /** Data directory; created when missing. One process per directory. */
  path: string;
}

/**
 * The engine's server settings, written to the data directory and passed as its configuration file,
 * sized for a sidecar. Caches: ClickHouse's defaults size them for a server (5 GiB each for marks,
 * primary indexes and skip-index marks, 100 MiB for query conditions), and the caches keep what
 * queries read until they are full: after a load with queries, that stayed resident. Threads: the
 * pool that removes merged-away parts may run 128 at once, and the global pool kept up to 1,000
 * idle threads, so a sidecar under a steady ingest load went from 36 to ~160 threads for good
 * (its first cleanup, ~30 s in); part loading at start may run 64.
 */
const ENGINE_CONFIG = `<clickhouse>
  <max_thread_pool_free_size>16</max_thread_pool_free_size>
  <max_parts_cleaning_thread_pool_size>2</max_parts_cleaning_thread_pool_size>
  <max_active_parts_loading_thread_pool_size>2</max_active_parts_loading_thread_pool_size>
  <max_outdated_parts_loading_thread_pool_size>2</max_outdated_parts_loading_thread_pool_size>
  <max_unexpected_parts_loading_thread_pool_size>2</max_unexpected_parts_loading_thread_pool_size>
  <mark_cache_size>33554432</mark_cache_size>
  <index_mark_cache_size>8388608</index_mark_cache_size>
  <primary_index_cache_size>16777216</primary_index_cache_size>
  <query_condition_cache_size>8388608</query_condition_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
</clickhouse>
`;

/** The embedded engine's shared library (chdb's), by its file name as mapped into the process. */
export const ENGINE_LIBRARY = 'libchdb.so';

async function loadChdb(): Promise<typeof Chdb> {
  const preload = preloadedAllocator();
  if (preload !== undefined) throw new StorageUnavailableError(chdbUnavailableMessage(platformKey(), { kind: 'allocator', preload }));
  try {
    return await import('chdb');
  } catch (err) {
    throw new StorageUnavailableError(chdbUnavailableMessage(platformKey(), chdbAbsence(err)), { cause: err });
  }
}

/**
 * Opens the embedded ClickHouse engine (chdb) on a data directory. Every call is asynchronous and
 * runs off the event loop. Throws StorageUnavailableError when chdb is not installed, and
 * StorageError when the directory cannot be opened (for example another process holds it).
 */
export async function createEmbeddedTransport(options: EmbeddedTransportOptions): Promise<StorageTransport> {
  const chdb = await loadChdb();
  const path = resolve(options.path);
  let session: Session;
  try {
    mkdirSync(path, { recursive: true });
    const engineConfig = join(path, '.heimdall-engine.xml');
    writeFileSync(engineConfig, ENGINE_CONFIG);
    session = new chdb.Session(path, { connectionArgs: ['--output_format_json_quote_64bit_integers=1', `--config-file=${engineConfig}`] });
  } catch (err) {
    throw toStorageError(err, `cannot open the embedded ClickHouse data directory ${path} (is another Heimdall using it?)`);
  }
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  // chdb takes binary formats only from files: RowBinary inserts go through a spool directory inside
  // the data directory (one process per data directory), emptied at open so a crash leaves nothing behind.
  const spool = join(path, '.heimdall-spool');
  rmSync(spool, { recursive: true, force: true });
  mkdirSync(spool, { recursive: true, mode: 0o700 });
  let spooled = 0;
  const insertRowBinary = async (table: string, data: Uint8Array, o: InsertOptions): Promise<void> => {
    const file = join(spool, `${++spooled}.bin`);
    await writeFile(file, data);
    try {
      const source = `'${file.replace(/[\\']/g, (c) => `\\${c}`)}'`;
      await session.queryAsync(`INSERT INTO ${table} (${insertColumnList(o.columns ?? [])}) FROM INFILE ${source}${settingsClause(insertSettings(o, true))} FORMAT RowBinary`, { format: 'TSV' });
    } finally {
      await rm(file, { force: true });
    }
  };

  const track = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    if (closed) throw new StorageError(`${what}: storage is closed`, { retryable: false });
    const p = work();
    inFlight.add(p);
    try {
      return await p;
    } catch (err) {
      throw toStorageError(err, what);
    } finally {
      inFlight.delete(p);
    }
  };
  const run = (sql: string, params: QueryParams | undefined, format: string) =>
    params && Object.keys(params).length > 0 ? session.queryBindAsync(sql, params, { format }) : session.queryAsync(sql, { format });

  return {
    kind: 'embedded',
    target: path,
    ping: () => track('ping', () => session.queryAsync('SELECT 1', { format: 'TSV' })).then(() => undefined),
    command: (sql: string, params?: QueryParams) => track('command', () => run(sql, params, 'TSV')).then(() => undefined),
    query: <T>(sql: string, params?: QueryParams, settings?: QuerySettings) => track('query', () => run(withQuerySettings(sql, settings), params, 'JSONEachRow')).then((r) => parseJsonLines<T>(r.text())),
    queryText: (sql: string, params?: QueryParams, settings?: QuerySettings) => track('query', () => run(withQuerySettings(sql, settings), params, 'JSONEachRow')).then((r) => r.text()),
    insert: (table: string, rows: readonly object[] | Uint8Array, insertOptions: InsertOptions = {}) =>
      track(`insert into ${table}`, async () => {
        if (insertOptions.format === 'RowBinary' && rows instanceof Uint8Array) return insertRowBinary(table, rows, insertOptions);
        await session.insert({
          table,
          values: rows instanceof Uint8Array ? rows : encodeJsonEachRow(rows),
          format: 'JSONEachRow',
          settings: insertSettings(insertOptions, true),
        });
      }),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...inFlight]);
      session.close();
      rmSync(spool, { recursive: true, force: true });
    },
  };
}
