import { join } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../telemetry/logger.js';
import type { Plan } from './checkpoint.js';
import { insertOptionsFor } from './formats.js';
import { writeFileAtomic, type QueueFiles } from './queue-files.js';
import type { Damage } from './segment-log.js';
import { decodeParts, type RecordPart, type WalRecord } from './wal.js';

/** Options for createDeadLetter. */
export interface DeadLetterOptions {
  /** The queue directory; files go to its `dead-letter` folder. */
  dir: string;
  files: QueueFiles;
  logger: Logger;
  metrics: Registry;
}

/**
 * The dead-letter folder: what the queue cannot deliver is kept there, never dropped. Each write is
 * atomic and durable; a failed one throws (the caller retries), so nothing is lost because the
 * dead-letter write failed.
 */
export interface DeadLetter {
  /** Keeps a batch ClickHouse refuses for good, as `<from>-<to>.jsonl` (one line per table part). */
  batch(records: readonly WalRecord[], plan: Plan, error: Error): Promise<void>;
  /** Keeps damaged bytes of a segment as `damaged-<segment>-<start>-<end>.bin`; counts and logs each region once. */
  damaged(d: Damage): Promise<void>;
}

/** Creates the dead-letter folder of a queue. */
export function createDeadLetter(options: DeadLetterOptions): DeadLetter {
  const target = join(options.dir, 'dead-letter');
  const { files, logger } = options;
  const batches = new Counter({ name: 'heimdall_exporter_dead_letter_batches_total', help: 'Queued batches ClickHouse refused for good, moved to the dead-letter directory.', registers: [options.metrics] });
  const corruptRecords = new Counter({ name: 'heimdall_exporter_queue_corrupt_records_total', help: 'Damaged regions of the durable queue (each at least one record that failed its checksum), moved to the dead-letter directory.', registers: [options.metrics] });
  const corruptBytes = new Counter({ name: 'heimdall_exporter_queue_corrupt_bytes_total', help: 'Bytes of damaged durable queue records moved to the dead-letter directory.', registers: [options.metrics] });
  /** Regions kept by this process (a consumer that retries reads them again). */
  const kept = new Set<string>();

  const write = async (name: string, data: Buffer): Promise<string> => {
    await files.mkdir(target);
    await writeFileAtomic(files, target, name, data);
    return join(target, name);
  };

  return {
    async batch(records, plan, error) {
      // JSONEachRow rows as text, RowBinary rows in base64.
      const line = (part: RecordPart): string => {
        const { format } = insertOptionsFor(part.table);
        return JSON.stringify({ table: part.table, rows: part.rows, format, data: part.data.toString(format === 'RowBinary' ? 'base64' : 'utf8') });
      };
      const file = await write(`${plan.from}-${plan.to}.jsonl`, Buffer.from(records.flatMap((r) => decodeParts(r.payload).map(line)).join('\n') + '\n'));
      batches.inc();
      logger.error({ err: error, file, records: records.length }, 'durable queue: ClickHouse refuses this batch for good; kept it in the dead-letter directory and moved on');
    },
    async damaged(d) {
      const key = `${d.segment}:${d.start}`;
      if (kept.has(key)) return;
      const file = await write(`damaged-${d.segment}-${d.start}-${d.end}.bin`, d.bytes);
      kept.add(key);
      corruptRecords.inc();
      corruptBytes.inc(d.bytes.length);
      logger.error({ segment: d.segment, start: d.start, end: d.end, bytes: d.bytes.length, file }, 'durable queue: damaged record(s) failed their checksum; kept the bytes in the dead-letter directory and went on with the next valid record');
    },
  };
}
