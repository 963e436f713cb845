import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { insertOptionsFor } from '../../storage/tables.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Plan } from './checkpoint.js';
import type { TableRows } from './formats.js';
import { createDeadLetterFolder } from './dead-letter-folder.js';
import type { QueueFiles } from './queue-files.js';
import type { Damage } from './segment-reader.js';

/** Options for createDeadLetter. */
export interface DeadLetterOptions {
  /** The queue directory; files go to its `dead-letter` folder. */
  dir: string;
  files: QueueFiles;
  /** Bytes the folder may hold; past it the oldest files are removed (ingest.queue.dead_letter_max_size). */
  maxBytes: number;
  logger: Logger;
  metrics: Registry;
}

/** Rows of one table that storage refuses, from the records `range` of a batch. */
export interface RefusedRows {
  table: string;
  range: Plan;
  parts: readonly TableRows[];
  error: Error;
}

/**
 * The dead-letter folder: what the queue cannot deliver is kept there, within a byte budget: past
 * it, the oldest files are removed (each logged and counted), so the folder holds the newest
 * failures. Writes are atomic and durable. Nothing here ever holds the queue back: damaged bytes
 * that cannot be written are counted as dropped and logged with where they were.
 */
export interface DeadLetter {
  /** Reads what the folder holds (for the budget). Never throws. */
  start(): Promise<void>;
  /** Keeps rows storage refuses for good, as `<from>-<to>-<table>.jsonl`. Throws when it cannot write them (the caller retries, then drops). */
  refused(rows: RefusedRows): Promise<void>;
  /** Counts and logs refused rows that could not be written (after retrying for a while). */
  dropRefused(rows: RefusedRows, err: unknown): void;
  /**
   * Keeps damaged bytes of a segment as `damaged-<segment>-<start>-<end>.bin`; counts and logs each
   * region once, also across restarts (a region whose file is there was counted). Never throws.
   */
  damaged(d: Damage): Promise<void>;
}

/** Creates the dead-letter folder of a queue. */
export function createDeadLetter(options: DeadLetterOptions): DeadLetter {
  const target = join(options.dir, 'dead-letter');
  const { files, logger } = options;
  const { metrics } = options;
  const batches = new Counter({ name: 'heimdall_exporter_dead_letter_batches_total', help: 'Queued rows ClickHouse refused for good (one per table and record range), moved to the dead-letter directory.', registers: [metrics] });
  const corruptRecords = new Counter({ name: 'heimdall_exporter_queue_corrupt_records_total', help: 'Damaged regions of the durable queue (each at least one record that failed its checksum or could not be read).', registers: [metrics] });
  const corruptBytes = new Counter({ name: 'heimdall_exporter_queue_corrupt_bytes_total', help: 'Bytes of damaged durable queue records.', registers: [metrics] });
  const dropped = new Counter({
    name: 'heimdall_exporter_queue_dead_letter_dropped_total',
    help: 'What the durable queue could not keep in the dead-letter directory and dropped (logged with where it was), by kind (damaged, refused) and reason (write_failed, unreadable, too_large).',
    labelNames: ['kind', 'reason'] as const,
    registers: [metrics],
  });
  const removed = new Counter({ name: 'heimdall_exporter_queue_dead_letter_removed_total', help: 'Dead-letter files removed, oldest first, to keep the directory within ingest.queue.dead_letter_max_size.', registers: [metrics] });
  const folder = createDeadLetterFolder({ path: target, files, maxBytes: options.maxBytes, removed, logger });
  new Gauge({
    name: 'heimdall_exporter_queue_dead_letter_bytes',
    help: 'Bytes in the dead-letter directory (at most ingest.queue.dead_letter_max_size).',
    registers: [metrics],
    collect() {
      this.set(folder.bytes);
    },
  });
  /** Regions seen by this process (a consumer that retries reads them again). */
  const seen = new Set<string>();

  const fileOf = (rows: RefusedRows): string => `${rows.range.from}-${rows.range.to}-${rows.table}.jsonl`;

  return {
    start: () => folder.start(),
    async refused(rows) {
      // JSONEachRow rows as text, RowBinary rows in base64.
      const line = (part: TableRows): string => {
        const { format } = insertOptionsFor(part.table);
        return JSON.stringify({ table: part.table, rows: part.rows, format, data: part.data.toString(format === 'RowBinary' ? 'base64' : 'utf8') });
      };
      const name = fileOf(rows);
      if (!(await folder.write(name, Buffer.from(rows.parts.map(line).join('\n') + '\n')))) {
        dropped.inc({ kind: 'refused', reason: 'too_large' });
        logger.error({ err: rows.error, table: rows.table, from: String(rows.range.from), to: String(rows.range.to) }, 'durable queue: ClickHouse refuses these rows for good and they are larger than ingest.queue.dead_letter_max_size: dropped them');
        return;
      }
      batches.inc();
      logger.error({ err: rows.error, file: join(target, name), table: rows.table, rows: rows.parts.reduce((n, p) => n + p.rows, 0) }, 'durable queue: ClickHouse refuses these rows for good; kept them in the dead-letter directory and moved on');
    },
    dropRefused(rows, err) {
      dropped.inc({ kind: 'refused', reason: 'write_failed' });
      logger.error({ err, refusal: rows.error, table: rows.table, from: String(rows.range.from), to: String(rows.range.to) }, 'durable queue: ClickHouse refuses these rows for good and the dead-letter file cannot be written: dropped them');
    },
    async damaged(d) {
      const key = `${d.segment}:${d.start}`;
      if (seen.has(key)) return;
      seen.add(key);
      const name = `damaged-${d.segment}-${d.start}-${d.end}.bin`;
      const where = { segment: d.segment, start: d.start, end: d.end, bytes: d.end - d.start };
      if ((await files.size(join(target, name)).catch(() => undefined)) !== undefined) return; // kept and counted before a restart
      corruptRecords.inc();
      corruptBytes.inc(d.end - d.start);
      if (!d.bytes) {
        dropped.inc({ kind: 'damaged', reason: 'unreadable' });
        logger.error(where, 'durable queue: a part of a segment cannot be read (I/O error); skipped it and went on with the next valid record');
        return;
      }
      try {
        if (!(await folder.write(name, d.bytes))) {
          dropped.inc({ kind: 'damaged', reason: 'too_large' });
          logger.error(where, 'durable queue: damaged record(s) failed their checksum and are larger than ingest.queue.dead_letter_max_size: dropped them and went on with the next valid record');
          return;
        }
        logger.error({ ...where, file: join(target, name) }, 'durable queue: damaged record(s) failed their checksum; kept the bytes in the dead-letter directory and went on with the next valid record');
      } catch (err) {
        dropped.inc({ kind: 'damaged', reason: 'write_failed' });
        logger.error({ ...where, err }, 'durable queue: damaged record(s) failed their checksum and the dead-letter file cannot be written: dropped them and went on with the next valid record');
      }
    },
  };
}
