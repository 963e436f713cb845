import { join } from 'node:path';
import type { Logger } from '../../telemetry/logger.js';
import { readRange, type QueueFiles } from './queue-files.js';
import { headerSalt, isSegmentName, scanSegment, SEGMENT_HEADER_BYTES, segmentFirst, segmentLayout, type SegmentFormat } from './wal.js';

/** A segment on disk as recovery found it. */
export interface SegmentInfo {
  name: string;
  path: string;
  first: bigint;
  /** Bytes known durable and whole; readers never look past it. */
  size: number;
  /** The sequence number of its newest record, or a bound above it (first - 1 when it has none). */
  last: bigint;
  format: SegmentFormat;
  dataStart: number;
}

/** Options for recoverSegments. */
export interface RecoveryOptions {
  dir: string;
  files: QueueFiles;
  /** The queue's salt from its checkpoint, when it has one: a segment whose header copies are both damaged is read with it. */
  salt: Buffer | undefined;
  /** Sequence numbers up to it may be in use (by the checkpoint). */
  floor: bigint;
  logger: Logger;
}

/** What recovery found: the segments, the newest sequence number in use, and the salt their headers carry. */
export interface Recovered {
  segments: SegmentInfo[];
  /** The newest sequence number a record on disk may have (new records are numbered after it). */
  top: bigint;
  /** The newest durable record's sequence number (at least `floor`). */
  durableSeq: bigint;
  /** The salt of the newest segment whose header checks out, if any. */
  salt: Buffer | undefined;
}

/** Reads of a segment's beginning, to find its salt when both header copies are damaged. */
const HEAD_BYTES = 1 << 20;
/** The smallest record (a version 1 header): a segment of n bytes holds fewer than n / 16 records. */
const MIN_RECORD_BYTES = 16;

/**
 * Opens the segments on disk without reading them whole: the header of each, and all of the last
 * one written to (the only one a crash can have torn: its torn write is cut off). Damage anywhere
 * else is left for the reader, which meets it lazily. A segment that cannot be read is kept (the
 * reader meets the error); recovery itself never fails on a segment's bytes, and needs no free space.
 */
export async function recoverSegments(options: RecoveryOptions): Promise<Recovered> {
  const { dir, files, logger } = options;
  const names = (await files.readdir(dir)).filter(isSegmentName).sort();
  // A size that cannot be read (undefined) is not taken for an empty segment: such a file is never removed here.
  const sizes = await Promise.all(names.map((n) => files.size(join(dir, n)).catch(() => undefined)));
  // The segment appended to when the process stopped: the last one with bytes in it.
  const appendedTo = sizes.findLastIndex((size) => size !== 0);
  let removed = false;
  for (const [i, name] of names.entries()) {
    if (i <= appendedTo && sizes[i] !== 0) continue;
    // Created, never written to before a crash.
    removed = await files.unlink(join(dir, name)).then(
      () => true,
      (err: unknown) => (logger.warn({ err, segment: name }, 'durable queue: cannot remove an empty segment'), removed),
    );
  }
  const kept = names.slice(0, appendedTo + 1).filter((_, i) => sizes[i] !== 0);
  // The headers of the sealed segments (the last one is read whole below).
  const heads = await Promise.all(kept.slice(0, -1).map((name) => readRange(files, join(dir, name), 0, SEGMENT_HEADER_BYTES).catch(() => undefined)));
  const headerSalts = heads.map((h) => (h ? headerSalt(h)?.salt : undefined)).filter((s) => s !== undefined);
  const salt = headerSalts.at(-1);
  const salts = [...new Map([options.salt, ...headerSalts.reverse()].filter((s) => s !== undefined).map((s) => [s.toString('hex'), s])).values()];

  const segments: SegmentInfo[] = [];
  // A segment's name is a number that was in use (even an empty file's: its append may have failed).
  let top = names.reduce((m, n) => (segmentFirst(n) > m ? segmentFirst(n) : m), options.floor);
  let durableSeq = options.floor;
  for (const [i, name] of kept.entries()) {
    const path = join(dir, name);
    const first = segmentFirst(name);
    const size = sizes[names.indexOf(name)] ?? 0;
    const next = kept[i + 1];
    // Numbers in a segment stay below the next segment's first (a failed append's numbers are not reused).
    const bound = next ? segmentFirst(next) - 1n : first + BigInt(Math.ceil(size / MIN_RECORD_BYTES));
    const seg = next ? await openSealed(files, path, name, first, size, bound, heads[i], salts, logger) : await openLast(files, path, name, first, size, bound, salts, logger);
    segments.push(seg);
    if (seg.last > top) top = seg.last;
    if (!next && seg.last > durableSeq) durableSeq = seg.last;
  }
  if (removed) await files.fsyncDir(dir).catch((err: unknown) => logger.warn({ err }, 'durable queue: cannot fsync the queue directory'));
  return { segments, top, durableSeq, salt };
}

/** A sealed segment: its layout from its header (or its first records when the header is damaged); its records are read lazily. */
async function openSealed(files: QueueFiles, path: string, name: string, first: bigint, size: number, bound: bigint, head: Buffer | undefined, salts: readonly Buffer[], logger: Logger): Promise<SegmentInfo> {
  let bytes = head;
  if (bytes && headerSalt(bytes) === undefined) bytes = await readRange(files, path, 0, Math.min(size, HEAD_BYTES)).catch(() => undefined);
  if (!bytes) logger.error({ segment: name }, 'durable queue: cannot read a segment header; its records are read (or counted as damage) when the consumer gets there');
  const layout = segmentLayout(bytes ?? Buffer.alloc(0), first, salts);
  if (bytes && layout.damagedCopies > 0) logger.error({ segment: name, damagedCopies: layout.damagedCopies }, 'durable queue: damaged segment header; reading the segment with the queue salt');
  return { name, path, first, size, last: bound, format: layout.format, dataStart: Math.min(layout.dataStart, size) };
}

/** The last segment written to: read whole, a write torn by a crash cut off its end. */
async function openLast(files: QueueFiles, path: string, name: string, first: bigint, size: number, bound: bigint, salts: readonly Buffer[], logger: Logger): Promise<SegmentInfo> {
  let data: Buffer;
  try {
    data = await files.readFile(path);
  } catch (err) {
    logger.error({ err, segment: name }, 'durable queue: cannot read the last segment; its records are read (or counted as damage) when the consumer gets there');
    const layout = segmentLayout(Buffer.alloc(0), first, salts);
    return { name, path, first, size, last: bound, format: layout.format, dataStart: Math.min(layout.dataStart, size) };
  }
  const layout = segmentLayout(data.subarray(0, HEAD_BYTES), first, salts);
  if (layout.damagedCopies > 0) logger.error({ segment: name, damagedCopies: layout.damagedCopies }, 'durable queue: damaged segment header; reading the segment with the queue salt');
  const scan = await scanSegment(data, layout.format, layout.dataStart, first);
  let end = data.length;
  if (scan.tail?.torn) {
    // A crash cut the last append short: it was never acknowledged. Cut it off.
    end = scan.tail.start;
    logger.warn({ segment: name, offset: end, bytes: data.length - end }, 'durable queue: cutting a write torn by a crash off the end of the last segment');
    try {
      const file = await files.open(path, 'r+');
      try {
        await file.truncate(end);
        await file.datasync();
      } finally {
        await file.close();
      }
    } catch (err) {
      logger.error({ err, segment: name }, 'durable queue: cannot cut a torn write; readers stop before it');
    }
  }
  const last = scan.records.at(-1)?.seq ?? first - 1n;
  return { name, path, first, size: end, last, format: layout.format, dataStart: Math.min(layout.dataStart, end) };
}
