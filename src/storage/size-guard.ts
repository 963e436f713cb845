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
      // On disk: every part, including those a merge just replaced (removed a little later); the
      // data to trim is what stays: the active parts.
      const [row] = await t.query<{ total: string; active: string }>('SELECT sum(bytes_on_disk) AS total, sumIf(bytes_on_disk, active) AS active FROM system.parts');
      measured = Number(row?.total ?? 0);
      inserted = 0;
      usedGauge.set(measured);
      const report: SizeReport = { measured, dropped: [], droppedBytes: 0 };
      let left = Number(row?.active ?? 0);
      if (left <= high) {
        stuck = false;
        return report;
      }
      for (const c of await candidates(t)) {
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

/** A partition of a retention table the guard may drop, with its newest row (Unix seconds) and its bytes. */
interface Candidate {
  table: string;
  id: string;
  newest: number;
  bytes: number;
}

/**
 * The partitions of the retention tables in the order they may go: those dated in the future first
 * (a client's clock, not today's data), then the oldest. Kept: the newest partition of each table
 * that is not in the future, and any partition written to in the last hour. Read from system.parts
 * (each part's min-max time), not from the tables.
 */
async function candidates(t: StorageTransport): Promise<Candidate[]> {
  const rows = await t.query<{ table: string; id: string; newest: string; bytes: string }>(
    'SELECT table, partition_id AS id, toUnixTimestamp(max(max_time)) AS newest, sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = currentDatabase() AND table IN {tables:Array(String)} GROUP BY table, id',
    { tables: RETENTION_TABLES.map((r) => r.table) },
  );
  const now = Date.now() / 1000;
  const future = (c: Candidate): boolean => c.newest > now + 3600;
  const all = rows.map((r) => ({ table: r.table, id: r.id, newest: Number(r.newest), bytes: Number(r.bytes) }));
  const newestPresent = new Map<string, number>();
  for (const c of all) if (!future(c)) newestPresent.set(c.table, Math.max(newestPresent.get(c.table) ?? 0, c.newest));
  return all
    .filter((c) => future(c) || (c.newest < (newestPresent.get(c.table) ?? Number.POSITIVE_INFINITY) && c.newest < now - 3600))
    .sort((a, b) => Number(future(b)) - Number(future(a)) || a.newest - b.newest);
}
