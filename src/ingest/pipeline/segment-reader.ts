import type { Logger } from '../../telemetry/logger.js';
import { readRange, type QueueFiles } from './queue-files.js';
import type { SegmentInfo } from './segment-recovery.js';
import { checkRecord, findRecordYielding, type WalRecord } from './wal.js';

/** Where a reader is: a segment (by its first sequence number), a byte offset in it, and the last good record's sequence number before it. */
export interface Position {
  first: bigint;
  offset: number;
  seq: bigint;
}

/** Bytes of a segment that hold no valid record (damage), kept whole; `bytes` is undefined when they cannot be read (I/O errors). */
export interface Damage {
  segment: string;
  start: number;
  end: number;
  bytes: Buffer | undefined;
}

/** What a read yields, with the position just past it. */
export type LogItem = ({ kind: 'record'; record: WalRecord } | { kind: 'damage'; damage: Damage }) & { next: Position };

/** Options for createSegmentReader. */
export interface SegmentReaderOptions {
  files: QueueFiles;
  logger: Logger;
}

/** Reads records of segment files, resynchronising after damage; gives up on a place that keeps failing to read. */
export interface SegmentReader {
  /**
   * Reads from a position inside a segment (before its durable size): records, or one damaged region
   * (the bytes up to the next valid record). A place that failed with EIO three times is returned as
   * damage without bytes (up to the end of its 4 MiB chunk), and again at once when read again.
   */
  read(s: SegmentInfo, pos: Position): Promise<LogItem[]>;
  /** Forgets what it gave up on in a segment (removed). */
  forget(segment: string): void;
}

/** Reads at most this much of a segment at once (a longer record is read whole). */
const READ_CHUNK = 4 << 20;
/** A read that fails with EIO this many times at the same place is given up on (its chunk becomes damage). */
const UNREADABLE_AFTER = 3;

/** Creates a segment reader. */
export function createSegmentReader(options: SegmentReaderOptions): SegmentReader {
  const { files, logger } = options;
  /** Reads that failed with EIO at one place (a retrying reader reads what comes before it again in between). */
  let readFailures = { at: '', count: 0 };
  /** Places given up on (segment:offset), with the end of what was skipped: a reader that comes back skips them at once. */
  const unreadable = new Map<string, number>();

  /** Reads from a position inside `s` (before its durable end). */
  const readIn = async (s: SegmentInfo, pos: Position): Promise<LogItem[]> => {
    let data = await readRange(files, s.path, pos.offset, Math.min(s.size - pos.offset, READ_CHUNK));
    const items: LogItem[] = [];
    let p = 0;
    let after = pos.seq;
    while (p < data.length) {
      const c = checkRecord(data, p, pos.offset, s.format, after);
      if (c.kind === 'record') {
        after = c.record.seq;
        p = c.record.end - pos.offset;
        items.push({ kind: 'record', record: c.record, next: { first: s.first, offset: c.record.end, seq: after } });
        continue;
      }
      if (c.kind === 'short' && pos.offset + p + c.need <= s.size) {
        if (items.length > 0) break; // the next read starts at this record
        data = await readRange(files, s.path, pos.offset, c.need); // one record longer than a chunk: read it whole
        if (data.length < c.need) throw new Error(`durable queue: ${s.name} ends before its durable size`);
        continue;
      }
      if (items.length > 0) break; // records first; the next read meets the damage
      // Damage: everything up to the next valid record in this segment (or its end).
      const rest = await readRange(files, s.path, pos.offset, s.size - pos.offset);
      const found = await findRecordYielding(rest, 1, pos.offset, s.format, after);
      const end = found < 0 ? s.size : pos.offset + found;
      return [{ kind: 'damage', damage: { segment: s.name, start: pos.offset, end, bytes: rest.subarray(0, end - pos.offset) }, next: { first: s.first, offset: end, seq: after } }];
    }
    return items;
  };

  /** readIn, or after the same place failed with EIO a few times in a row, its chunk as unreadable damage. */
  const read = async (s: SegmentInfo, pos: Position): Promise<LogItem[]> => {
    const at = `${s.name}:${pos.offset}`;
    const skip = (end: number): LogItem[] => [{ kind: 'damage', damage: { segment: s.name, start: pos.offset, end, bytes: undefined }, next: { first: s.first, offset: end, seq: pos.seq } }];
    const skipped = unreadable.get(at);
    if (skipped !== undefined) return skip(skipped);
    try {
      const items = await readIn(s, pos);
      if (readFailures.at === at) readFailures = { at: '', count: 0 };
      return items;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EIO') throw err;
      readFailures = { at, count: readFailures.at === at ? readFailures.count + 1 : 1 };
      if (readFailures.count < UNREADABLE_AFTER) throw err;
      readFailures = { at: '', count: 0 };
      const end = Math.min(s.size, (Math.floor(pos.offset / READ_CHUNK) + 1) * READ_CHUNK);
      unreadable.set(at, end);
      logger.error({ err, segment: s.name, start: pos.offset, end }, 'durable queue: a part of a segment cannot be read; skipping it');
      return skip(end);
    }
  };

  return {
    read,
    forget(segment) {
      for (const at of unreadable.keys()) if (at.startsWith(`${segment}:`)) unreadable.delete(at);
    },
  };
}
