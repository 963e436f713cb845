import type { Logger } from '../../telemetry/logger.js';
import { createGroupCommit } from './group-commit.js';
import { writeAll, type QueueFiles } from './queue-files.js';
import { createSegmentReader, type LogItem, type Position } from './segment-reader.js';
import { recoverSegments } from './segment-recovery.js';
import { createSegmentSet, type Segment } from './segment-set.js';
import { encodeRecord, HEADER_BYTES, newSalt } from './wal.js';

/** Options for createSegmentLog. */
export interface SegmentLogOptions {
  /** The queue directory (it must exist). */
  dir: string;
  files: QueueFiles;
  /** Bytes per segment file before a new one is started. */
  segmentBytes: number;
  /** Called after appended records became durable (readable). */
  onDurable: () => void;
  logger: Logger;
}

/**
 * The append-only log of segment files: group-committed appends (one write, one fdatasync), reads
 * that resynchronise after damage, recovery, and release of segments the consumer is done with.
 */
export interface SegmentLog {
  /**
   * Opens the segments on disk (see recoverSegments: the last one is read whole, the others when the
   * reader gets there) and numbers new records past `floor` (sequence numbers up to it may be in use
   * by the consumer's checkpoint). New segments carry `salt`, or the salt of the segments on disk,
   * or a new one: resolves with it. Needs no free disk space; never fails on a segment's bytes.
   */
  recover(floor: bigint, salt: Buffer | undefined): Promise<Buffer>;
  /**
   * Appends one record; resolves once it is durable. A write that did not complete (error, short
   * write, failed fdatasync) rejects with its error, and the segment is cut back to its last whole
   * record, then closed (the next append starts a new segment).
   */
  append(payload: Buffer): Promise<void>;
  /** The sequence number of the newest durable record. */
  readonly durableSeq: bigint;
  /** Bytes of the segments on disk plus appends in flight. */
  readonly bytes: number;
  /** Where a reader of the whole log starts. */
  readonly start: Position;
  /**
   * Reads from `pos` what is durable in one segment: records, or one damaged region (the bytes up to
   * the next valid record). `from` is `pos`, moved to the next segment when that one was released
   * or read to its end; `sealed` says whether that segment is done with appends (its records are
   * final). No items: nothing more for now. A part of a segment that keeps failing to read (EIO,
   * three times) comes back as damage without bytes, so one bad sector cannot stop the reader.
   */
  read(pos: Position): Promise<{ from: Position; sealed: boolean; items: LogItem[] }>;
  /**
   * Removes the segments (except the one appended to) that `passed` is past and whose records are
   * all at or under `committed`. Resolves true when it removed one (disk space was freed).
   */
  release(passed: Position, committed: bigint): Promise<boolean>;
  /** Waits for appends in flight and closes the segment appended to. */
  close(): Promise<void>;
}

/** Creates the segment log of a queue directory: its segment files, a group commit appending to the newest, a reader. */
export function createSegmentLog(options: SegmentLogOptions): SegmentLog {
  const { dir, files, logger } = options;
  let salt = newSalt();
  let nextSeq = 1n;
  let durableSeq = 0n;
  /** Bytes reserved by appends not yet durable. */
  let reserved = 0;
  const reader = createSegmentReader({ files, logger });
  const segments = createSegmentSet({ dir, files, logger, onRemoved: (name) => reader.forget(name) });

  /** Writes one group of records at the end of the active segment (or a new one), then fdatasyncs it. */
  const write = async (payloads: Buffer[]): Promise<void> => {
    const bytes = payloads.reduce((n, p) => n + p.length + HEADER_BYTES, 0);
    let s: Segment | undefined;
    try {
      const active = segments.active;
      s = active && active.size < options.segmentBytes ? active : await segments.rotate(nextSeq, salt);
      const { file, format } = s;
      if (!file || format.version !== 2) throw new Error('durable queue: the segment to append to is not open');
      const first = nextSeq;
      // Numbers of a failed batch are not reused: its bytes may still be on disk past the cut.
      nextSeq += BigInt(payloads.length);
      await writeAll(file, payloads.flatMap((p, i) => encodeRecord(first + BigInt(i), p, format)), s.size);
      await file.datasync();
      s.size += bytes;
      s.last = nextSeq - 1n;
      durableSeq = s.last;
      reserved -= bytes;
    } catch (err) {
      reserved -= bytes;
      if (s) await segments.cutBack(s);
      throw err;
    }
  };
  const appends = createGroupCommit({ write, onWritten: options.onDurable });

  return {
    get durableSeq() {
      return durableSeq;
    },
    get bytes() {
      return segments.bytes + reserved;
    },
    get start() {
      return segments.start(nextSeq);
    },
    async recover(floor, queueSalt) {
      const found = await recoverSegments({ dir, files, salt: queueSalt, floor, logger });
      segments.reset(found.segments);
      durableSeq = found.durableSeq;
      nextSeq = found.top + 1n;
      salt = queueSalt ?? found.salt ?? salt;
      return salt;
    },
    append(payload) {
      reserved += payload.length + HEADER_BYTES;
      return appends.add(payload);
    },
    async read(pos) {
      const { from, segment, sealed } = segments.locate(pos);
      return { from, sealed, items: segment ? await reader.read(segment, from) : [] };
    },
    release: (passed, committed) => segments.release(passed, committed),
    async close() {
      await appends.idle();
      await segments.close();
    },
  };
}
