import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';
import { RETENTION_TABLES } from './migrations/index.js';
import type { StorageTransport } from './transport.js';

/** Options for createSizeGuard. */
export interface SizeGuardOptions {
  /** Bytes the store may hold on disk (`storage.embedded.max_size`). */
  maxBytes: number;
  /** Past this share of maxBytes, the oldest partitions are dropped (default 0.9). */
  highWater?: number;
  /** ... until the store is under this share of maxBytes (default 0.75). */
  lowWater?: number;
  logger: Logger;
  metrics: Registry;
}

/** What one enforcement did. */
export interface SizeReport {
  /** Bytes on disk measured before dropping anything. */
  measured: number;
  /** Partitions dropped, oldest first, as `table/partition id`. */
  dropped: string[];
  droppedBytes: number;
}

/**
 * Keeps the embedded store within its byte budget, so it never outgrows the volume it lives on (a
 * Kubernetes emptyDir past its sizeLimit evicts the whole pod, application included).
 */
export interface SizeGuard {
  readonly limit: number;
  /** Bytes the store holds: the last measurement plus what was inserted since (an upper bound). */
  readonly used: number;
  /** Why inserts are refused now (the store is at its budget), or undefined. */
  refusal(): string | undefined;
  /** Counts inserted bytes until the next measurement. */
  noteInsert(bytes: number): void;
  /**
   * Measures the store (every part on disk, active or awaiting removal); past the high-water mark,
   * drops whole partitions of the retention tables, oldest data first, until the store is under the
   * low-water mark. The newest partition of each table is never dropped. Throws storage errors.
   */
  enforce(transport: StorageTransport): Promise<SizeReport>;
}

/** Creates the size guard of the embedded store. */
export function createSizeGuard(options: SizeGuardOptions): SizeGuard {
  const high = options.maxBytes * (options.highWater ?? 0.9);
  const low = options.maxBytes * (options.lowWater ?? 0.75);
  const logger = options.logger;
  let measured = 0;
  let inserted = 0;
  let stuck = false;
  new Gauge({ name: 'heimdall_storage_limit_bytes', help: 'Bytes the embedded store may hold (storage.embedded.max_size).', registers: [options.metrics] }).set(options.maxBytes);
  const usedGauge = new Gauge({ name: 'heimdall_storage_bytes', help: 'Bytes the embedded store holds on disk (last measurement plus inserts since).', registers: [options.metrics] });
  const droppedParts = new Counter({ name: 'heimdall_storage_size_dropped_partitions_total', help: 'Partitions dropped to keep the embedded store within storage.embedded.max_size, by table.', labelNames: ['table'] as const, registers: [options.metrics] });
  const droppedBytes = new Counter({ name: 'heimdall_storage_size_dropped_bytes_total', help: 'Bytes dropped to keep the embedded store within storage.embedded.max_size.', registers: [options.metrics] });

  const guard: SizeGuard = {
    limit: options.maxBytes,
    get used() {
      return measured + inserted;
    },
    refusal() {
      if (guard.used < options.maxBytes) return undefined;
      return `the embedded store holds ${guard.used} bytes, its limit storage.embedded.max_size is ${options.maxBytes}${stuck ? ' and only the newest partitions are left: raise the limit or shorten retention' : '; the oldest data is being dropped'}`;
    },
    noteInsert(bytes) {
      inserted += bytes;
      usedGauge.set(guard.used);
    },
    async enforce(t) {
      const [row] = await t.query<{ bytes: string }>('SELECT sum(bytes_on_disk) AS bytes FROM system.parts');
      measured = Number(row?.bytes ?? 0);
      inserted = 0;
      usedGauge.set(measured);
      const report: SizeReport = { measured, dropped: [], droppedBytes: 0 };
      if (measured <= high) {
        stuck = false;
        return report;
      }
      const candidates: Array<{ table: string; id: string; newest: number; bytes: number }> = [];
      const tables = new Set((await t.query<{ name: string }>('SELECT name FROM system.tables WHERE database = currentDatabase()')).map((r) => r.name));
      for (const { table, column } of RETENTION_TABLES) {
        if (!tables.has(table)) continue;
        const bytes = new Map((await t.query<{ id: string; bytes: string }>('SELECT partition_id AS id, sum(bytes_on_disk) AS bytes FROM system.parts WHERE database = currentDatabase() AND table = {table:String} AND active GROUP BY id', { table })).map((r) => [r.id, Number(r.bytes)]));
        const parts = await t.query<{ id: string; newest: string }>(`SELECT _partition_id AS id, toUnixTimestamp(max(${column})) AS newest FROM ${table} GROUP BY id ORDER BY newest`);
        // The newest partition takes today's data: never dropped.
        for (const p of parts.slice(0, -1)) candidates.push({ table, id: p.id, newest: Number(p.newest), bytes: bytes.get(p.id) ?? 0 });
      }
      candidates.sort((a, b) => a.newest - b.newest);
      let left = measured;
      for (const c of candidates) {
        if (left <= low) break;
        if (!/^[\w-]+$/.test(c.id)) throw new Error(`unexpected partition id ${JSON.stringify(c.id)} in ${c.table}`);
        await t.command(`ALTER TABLE ${c.table} DROP PARTITION ID '${c.id}'`);
        left -= c.bytes;
        report.dropped.push(`${c.table}/${c.id}`);
        report.droppedBytes += c.bytes;
        droppedParts.inc({ table: c.table });
        droppedBytes.inc(c.bytes);
      }
      stuck = left > low;
      if (report.dropped.length > 0) logger.warn({ measured, limit: options.maxBytes, dropped: report.dropped, droppedBytes: report.droppedBytes }, 'the embedded store passed 90% of storage.embedded.max_size: dropped its oldest partitions');
      if (stuck) logger.error({ measured, left, limit: options.maxBytes }, 'the embedded store is over its size budget and only its newest partitions are left: raise storage.embedded.max_size or shorten retention');
      return report;
    },
  };
  return guard;
}
