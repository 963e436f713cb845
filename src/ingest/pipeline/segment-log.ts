import { join } from 'node:path';
import type { Logger } from '../../telemetry/logger.js';
import { writeAll, type QueueFile, type QueueFiles } from './queue-files.js';
import { createSegmentReader, type LogItem, type Position } from './segment-reader.js';
import { recoverSegments, type SegmentInfo } from './segment-recovery.js';
import { encodeRecord, formatFor, HEADER_BYTES, newSalt, segmentHeader, segmentName } from './wal.js';

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

interface Segment extends SegmentInfo {
  /** Open for appends: only the newest segment, created by this process. */
  file: QueueFile | undefined;
}


/** Creates the segment log of a queue directory. */
export function createSegmentLog(options: SegmentLogOptions): SegmentLog {
  const { dir, files, logger } = options;
  let segments: Segment[] = [];
  let active: Segment | undefined;
  let salt = newSalt();
  let nextSeq = 1n;
  let durableSeq = 0n;
  /** Bytes reserved by appends not yet durable. */
  let reserved = 0;
  let pending: Array<{ payload: Buffer; resolve: () => void; reject: (e: Error) => void }> = [];
  let flushing: Promise<void> | undefined;
  const reader = createSegmentReader({ files, logger });

  const startOf = (s: Segment): Position => ({ first: s.first, offset: s.dataStart, seq: s.first - 1n });

  /** Stops appending to a segment; it stays readable up to its durable size. */
  const seal = async (s: Segment): Promise<void> => {
    const file = s.file;
    s.file = undefined;
    if (active === s) active = undefined;
    await file?.close().catch((err: unknown) => logger.warn({ err, segment: s.name }, 'durable queue: cannot close a segment'));
  };

  /** Cuts a segment back to its durable size after a failed append (never extending it), then seals it. */
  const undo = async (s: Segment): Promise<void> => {
    try {
      const file = s.file;
      if (file) {
        if ((await file.size()) > s.size) await file.truncate(s.size);
        const size = await file.size();
        if (size !== s.size) throw new Error(`the segment is ${size} bytes after cutting it back to ${s.size}`);
        await file.datasync();
      }
    } catch (err) {
      logger.error({ err, segment: s.name, size: s.size }, 'durable queue: cannot cut back a failed append; readers stop at the last whole record');
    }
    await seal(s);
  };

  /** Starts a new segment at nextSeq: header written and durable, directory entry durable. */
  const rotate = async (): Promise<Segment> => {
    if (active) await seal(active);
    const name = segmentName(nextSeq);
    const path = join(dir, name);
    const header = segmentHeader(salt);
    const file = await files.open(path, 'w');
    try {
      await writeAll(file, [header], 0);
      await file.datasync();
      await files.fsyncDir(dir);
    } catch (err) {
      await file.close().catch(() => undefined);
      await files.unlink(path).catch(() => undefined);
      throw err;
    }
    const s: Segment = { name, path, first: nextSeq, size: header.length, last: nextSeq - 1n, format: formatFor(salt, nextSeq), dataStart: header.length, file };
    segments.push(s);
    active = s;
    return s;
  };

  const flush = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      const bytes = batch.reduce((n, p) => n + p.payload.length + HEADER_BYTES, 0);
      let s: Segment | undefined;
      try {
        s = active && active.size < options.segmentBytes ? active : await rotate();
        const { file, format } = s;
        if (!file || format.version !== 2) throw new Error('durable queue: the segment to append to is not open');
        const first = nextSeq;
        // Numbers of a failed batch are not reused: its bytes may still be on disk past the cut.
        nextSeq += BigInt(batch.length);
        await writeAll(file, batch.flatMap((p, i) => encodeRecord(first + BigInt(i), p.payload, format)), s.size);
        await file.datasync();
        s.size += bytes;
        s.last = nextSeq - 1n;
        durableSeq = s.last;
        reserved -= bytes;
        for (const p of batch) p.resolve();
        options.onDurable();
      } catch (err) {
        reserved -= bytes;
        if (s) await undo(s);
        for (const p of batch) p.reject(err as Error);
      }
    }
  };

  const kick = (): void => {
    flushing ??= flush().finally(() => {
      flushing = undefined;
      if (pending.length > 0) kick();
    });
  };

  return {
    get durableSeq() {
      return durableSeq;
    },
    get bytes() {
      return segments.reduce((n, s) => n + s.size, 0) + reserved;
    },
    get start() {
      const s = segments[0];
      return s ? startOf(s) : { first: nextSeq, offset: 0, seq: nextSeq - 1n };
    },

    async recover(floor, queueSalt) {
      const found = await recoverSegments({ dir, files, salt: queueSalt, floor, logger });
      segments = found.segments.map((s) => ({ ...s, file: undefined }));
      active = undefined;
      durableSeq = found.durableSeq;
      nextSeq = found.top + 1n;
      salt = queueSalt ?? found.salt ?? salt;
      return salt;
    },

    append(payload) {
      reserved += payload.length + HEADER_BYTES;
      return new Promise<void>((resolve, reject) => {
        pending.push({ payload, resolve, reject });
        kick();
      });
    },

    async read(pos) {
      let from = pos;
      for (;;) {
        let i = segments.findIndex((s) => s.first === from.first);
        if (i < 0) {
          i = segments.findIndex((s) => s.first > from.first);
          const s = segments[i];
          if (!s) return { from, sealed: false, items: [] };
          from = startOf(s);
        }
        const s = segments[i] as Segment;
        if (from.offset < s.dataStart) from = startOf(s);
        if (from.offset < s.size) return { from, sealed: s !== active, items: await reader.read(s, from) };
        const next = segments[i + 1];
        if (!next) return { from, sealed: s !== active, items: [] };
        from = startOf(next);
      }
    },

    async release(passed, committed) {
      let removed = false;
      for (let s = segments[0]; s && s !== active; s = segments[0]) {
        const done = passed.first > s.first || (passed.first === s.first && passed.offset >= s.size);
        if (!done || s.last > committed) break;
        await files.unlink(s.path);
        segments.shift();
        reader.forget(s.name);
        removed = true;
      }
      if (removed) await files.fsyncDir(dir);
      return removed;
    },

    async close() {
      while (flushing) await flushing;
      if (active) await seal(active);
    },
  };
}
