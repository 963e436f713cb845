import type { SchemaContext } from '../../storage/migrations/context.js';
import { RETENTION_TABLES } from '../../storage/migrations/index.js';
import type { Storage } from '../../storage/storage.js';
import type { TaskRunner } from './kind.js';
import { KIND_PARAMS } from './params.js';

/** What the retention task did to one table. */
interface TableReport {
  table: string;
  retention_seconds: number;
  partitions_dropped: string[];
  rows_removed: number;
  bytes_removed: number;
  /** Rows past retention left in partitions that also hold newer rows (removed by TTL materialisation). */
  expired_rows_in_live_partitions: number;
  ttl_materialized: boolean;
}

/**
 * The `retention` task: for every table with a retention, drops the partitions whose newest row is
 * past it and materialises the TTL where expired rows share a partition with newer ones; reports
 * what it removed (or, with dry_run, what it would). Partition ids come from ClickHouse itself.
 */
export function createRetention(deps: { storage: Storage; schema: Pick<SchemaContext, 'onCluster' | 'retention'> }): TaskRunner {
  return async (raw, ctx) => {
    const p = KIND_PARAMS.retention.parse(raw);
    if (!deps.storage.ready) throw new Error('storage is not ready');
    const t = deps.storage.transport;
    const tables = RETENTION_TABLES.filter((r) => !p.tables || p.tables.includes(r.table));
    const existing = new Set((await t.query<{ name: string }>('SELECT name FROM system.tables WHERE database = currentDatabase()')).map((r) => r.name));
    const reports: TableReport[] = [];
    for (const [i, { table, column, signal }] of tables.entries()) {
      ctx.signal.throwIfAborted();
      ctx.progress(Math.floor((i / tables.length) * 100), `checking ${table}`);
      const ms = deps.schema.retention[signal];
      if (ms <= 0 || !existing.has(table)) continue;
      const cutoff = Math.floor((Date.now() - ms) / 1000);
      const partitions = await t.query<{ id: string; rows: string; newest: string }>(
        `SELECT _partition_id AS id, count() AS rows, toUnixTimestamp(max(${column})) AS newest FROM ${table} GROUP BY id`,
      );
      const bytes = new Map(
        (await t.query<{ id: string; bytes: string }>('SELECT partition_id AS id, sum(bytes_on_disk) AS bytes FROM system.parts WHERE database = currentDatabase() AND table = {table:String} AND active GROUP BY id', { table })).map((r) => [r.id, Number(r.bytes)]),
      );
      const expired = partitions.filter((x) => Number(x.newest) < cutoff);
      const report: TableReport = { table, retention_seconds: Math.round(ms / 1000), partitions_dropped: [], rows_removed: 0, bytes_removed: 0, expired_rows_in_live_partitions: 0, ttl_materialized: false };
      for (const x of expired) {
        if (!/^[\w-]+$/.test(x.id)) throw new Error(`unexpected partition id ${JSON.stringify(x.id)} in ${table}`);
        if (!p.dry_run) await t.command(`ALTER TABLE ${table}${deps.schema.onCluster} DROP PARTITION ID '${x.id}'`);
        report.partitions_dropped.push(x.id);
        report.rows_removed += Number(x.rows);
        report.bytes_removed += bytes.get(x.id) ?? 0;
      }
      const live = partitions.filter((x) => Number(x.newest) >= cutoff).map((x) => x.id);
      if (live.length > 0) {
        const [row] = await t.query<{ n: string }>(`SELECT count() AS n FROM ${table} WHERE _partition_id IN {live:Array(String)} AND ${column} < toDateTime({cutoff:Int64})`, { live, cutoff });
        report.expired_rows_in_live_partitions = Number(row?.n ?? 0);
        if (report.expired_rows_in_live_partitions > 0 && !p.dry_run) {
          await t.command(`ALTER TABLE ${table}${deps.schema.onCluster} MATERIALIZE TTL`);
          report.ttl_materialized = true;
        }
      }
      reports.push(report);
    }
    const rows = reports.reduce((n, r) => n + r.rows_removed, 0);
    const dropped = reports.reduce((n, r) => n + r.partitions_dropped.length, 0);
    const pending = reports.reduce((n, r) => n + r.expired_rows_in_live_partitions, 0);
    const verb = p.dry_run ? 'would drop' : 'dropped';
    return {
      message: `${verb} ${dropped} partitions (${rows} rows) past retention in ${reports.length} tables; ${pending} expired rows in live partitions${pending > 0 && !p.dry_run ? ' (TTL materialised)' : ''}`,
      result: { dry_run: p.dry_run, tables: reports },
    };
  };
}
