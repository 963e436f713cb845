import { join } from 'node:path';
import type { Logger } from '../../telemetry/logger.js';
import { writeAll, type QueueFile, type QueueFiles } from './queue-files.js';
import type { Position } from './segment-reader.js';
import type { SegmentInfo } from './segment-recovery.js';
import { formatFor, segmentHeader, segmentName } from './wal.js';

/** A segment of the log. */
export interface Segment extends SegmentInfo {
  /** Open for appends: only the newest segment, created by this process. */
  file: QueueFile | undefined;
}

/** Options for createSegmentSet. */
export interface SegmentSetOptions {
  /** The queue directory (it must exist). */
  dir: string;
  files: QueueFiles;
  /** Called with the name of each segment release removed (for the reader's per-segment state). */
  onRemoved: (name: string) => void;
  logger: Logger;
}

/**
 * The segment files of a log, oldest first, and the one open for appends (`active`, always the
 * newest). Rotation makes a new segment durable (header and directory entry) before it is used;
 * a segment stops taking appends (is sealed) when a newer one starts, when an append to it failed,
 * or at close.
 */
export interface SegmentSet {
  /** Replaces the segments with those recovery found; none is open for appends. */
  reset(found: readonly SegmentInfo[]): void;
  /** The segment open for appends, if any. */
  readonly active: Segment | undefined;
  /** Bytes of the segments (their durable sizes). */
  readonly bytes: number;
  /** Where a reader of the whole log starts: the oldest segment, or `next` (the next sequence number) when there is none. */
  start(next: bigint): Position;
  /** Seals the active segment and starts a new one for records from `first`, with `salt` in its header. Throws (leaving no file) when it cannot. */
  rotate(first: bigint, salt: Buffer): Promise<Segment>;
  /** Cuts a segment back to its durable size after a failed append (never extending it), then seals it. Never throws (logs). */
  cutBack(s: Segment): Promise<void>;
  /**
   * Where a read from `pos` goes: `from` is `pos`, moved to the next segment when that one was
   * released or read to its end; `segment` is the one to read from `from`, undefined when there is
   * nothing to read now; `sealed` says whether that segment is done with appends.
   */
  locate(pos: Position): { from: Position; segment: Segment | undefined; sealed: boolean };
  /**
   * Removes the oldest segments (never the active one) that `passed` is past and whose records are
   * all at or under `committed`, then syncs the directory. Resolves true when it removed one.
   */
  release(passed: Position, committed: bigint): Promise<boolean>;
  /** Seals the active segment. */
  close(): Promise<void>;
}

const startOf = (s: Segment): Position => ({ first: s.first, offset: s.dataStart, seq: s.first - 1n });

/** Creates the segment file for records from `first`: header written and durable, directory entry durable; on failure, no file is left. */
async function createSegmentFile(dir: string, files: QueueFiles, first: bigint, salt: Buffer): Promise<Segment> {
  const name = segmentName(first);
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
  return { name, path, first, size: header.length, last: first - 1n, format: formatFor(salt, first), dataStart: header.length, file };
}

/** Cuts a segment's open file back to its durable size (never extending it), durably. Throws when it cannot. */
async function truncateToDurable(s: Segment): Promise<void> {
  const file = s.file;
  if (!file) return;
  if ((await file.size()) > s.size) await file.truncate(s.size);
  const size = await file.size();
  if (size !== s.size) throw new Error(`the segment is ${size} bytes after cutting it back to ${s.size}`);
  await file.datasync();
}

/** Creates the set of segment files of a queue directory (empty until reset). */
export function createSegmentSet(options: SegmentSetOptions): SegmentSet {
  const { dir, files, logger } = options;
  let segments: Segment[] = [];
  let active: Segment | undefined;

  /** Stops appending to a segment; it stays readable up to its durable size. */
  const seal = async (s: Segment): Promise<void> => {
    const file = s.file;
    s.file = undefined;
    if (active === s) active = undefined;
    await file?.close().catch((err: unknown) => logger.warn({ err, segment: s.name }, 'durable queue: cannot close a segment'));
  };

  return {
    reset(found) {
      segments = found.map((s) => ({ ...s, file: undefined }));
      active = undefined;
    },
    get active() {
      return active;
    },
    get bytes() {
      return segments.reduce((n, s) => n + s.size, 0);
    },
    start(next) {
      const s = segments[0];
      return s ? startOf(s) : { first: next, offset: 0, seq: next - 1n };
    },
    async rotate(first, salt) {
      if (active) await seal(active);
      const s = await createSegmentFile(dir, files, first, salt);
      segments.push(s);
      active = s;
      return s;
    },
    async cutBack(s) {
      try {
        await truncateToDurable(s);
      } catch (err) {
        logger.error({ err, segment: s.name, size: s.size }, 'durable queue: cannot cut back a failed append; readers stop at the last whole record');
      }
      await seal(s);
    },
    locate(pos) {
      let from = pos;
      for (;;) {
        let i = segments.findIndex((s) => s.first === from.first);
        if (i < 0) {
          i = segments.findIndex((s) => s.first > from.first);
          const s = segments[i];
          if (!s) return { from, segment: undefined, sealed: false };
          from = startOf(s);
        }
        const s = segments[i] as Segment;
        if (from.offset < s.dataStart) from = startOf(s);
        if (from.offset < s.size) return { from, segment: s, sealed: s !== active };
        const next = segments[i + 1];
        if (!next) return { from, segment: undefined, sealed: s !== active };
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
        options.onRemoved(s.name);
        removed = true;
      }
      if (removed) await files.fsyncDir(dir);
      return removed;
    },
    async close() {
      if (active) await seal(active);
    },
  };
}
