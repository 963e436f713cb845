import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { insertOptionsFor } from '../../storage/tables.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Plan } from './checkpoint.js';
import type { TableRows } from './formats.js';
import { writeFileAtomic, type QueueFiles } from './queue-files.js';
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

/** The sequence number a dead-letter file's name starts from: files are removed oldest (lowest) first. */
const orderOf = (name: string): bigint => BigInt(/^(?:damaged-seg-)?(\d+)/.exec(name)?.[1] ?? '0');

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
  /** The folder's files, oldest first, with their sizes. */
  let held: Array<{ name: string; bytes: number }> = [];
  new Gauge({
    name: 'heimdall_exporter_queue_dead_letter_bytes',
    help: 'Bytes in the dead-letter directory (at most ingest.queue.dead_letter_max_size).',
    registers: [metrics],
    collect() {
      this.set(held.reduce((n, f) => n + f.bytes, 0));
    },
  });
  /** Regions seen by this process (a consumer that retries reads them again). */
  const seen = new Set<string>();

  /** Removes the oldest files until `bytes` more fit the budget. */
  const makeRoom = async (bytes: number): Promise<void> => {
    let total = held.reduce((n, f) => n + f.bytes, 0);
    while (held.length > 0 && total + bytes > options.maxBytes) {
      const oldest = held[0] as { name: string; bytes: number };
      await files.unlink(join(target, oldest.name));
      held.shift();
      total -= oldest.bytes;
      removed.inc();
      logger.error({ file: join(target, oldest.name), bytes: oldest.bytes, maxBytes: options.maxBytes }, 'durable queue: removed the oldest dead-letter file to stay within ingest.queue.dead_letter_max_size');
    }
  };

  /** Writes a file within the budget; false when it is larger than the whole budget. */
  const write = async (name: string, data: Buffer): Promise<boolean> => {
    if (data.length > options.maxBytes) return false;
    await makeRoom(data.length);
    await files.mkdir(target);
    await writeFileAtomic(files, target, name, data);
    held.push({ name, bytes: data.length });
    return true;
  };

  const fileOf = (rows: RefusedRows): string => `${rows.range.from}-${rows.range.to}-${rows.table}.jsonl`;

  return {
    async start() {
      try {
        const names = (await files.readdir(target).catch(() => [])).filter((n) => !n.startsWith('.'));
        const sizes = await Promise.all(names.map((n) => files.size(join(target, n))));
        held = names.map((name, i) => ({ name, bytes: sizes[i] ?? 0 })).sort((a, b) => (orderOf(a.name) < orderOf(b.name) ? -1 : orderOf(a.name) > orderOf(b.name) ? 1 : 0));
      } catch (err) {
        logger.warn({ err }, 'durable queue: cannot list the dead-letter directory; its budget counts only new files');
      }
    },
    async refused(rows) {
      // JSONEachRow rows as text, RowBinary rows in base64.
      const line = (part: TableRows): string => {
        const { format } = insertOptionsFor(part.table);
        return JSON.stringify({ table: part.table, rows: part.rows, format, data: part.data.toString(format === 'RowBinary' ? 'base64' : 'utf8') });
      };
      const name = fileOf(rows);
      if (!(await write(name, Buffer.from(rows.parts.map(line).join('\n') + '\n')))) {
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
        if (!(await write(name, d.bytes))) {
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
