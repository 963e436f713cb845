import type { Plan } from './checkpoint.js';
import { attempt } from './consumer-retry.js';
import type { DeadLetter } from './dead-letter.js';
import type { TableRows } from './formats.js';
import type { QueuedRecord } from './queue-delivery.js';
import type { SegmentLog } from './segment-log.js';
import type { Position } from './segment-reader.js';
import { decodeParts, segmentName } from './wal.js';

/** Options for createBatchReader. */
export interface BatchReaderOptions {
  log: SegmentLog;
  deadLetter: DeadLetter;
  /** Rows per batch. */
  maxRows: number;
}

/** How far a batch reaches: see BatchReader.read. */
export interface BatchLimit {
  /** Exactly the records up to this sequence number (the replay of a plan). */
  upTo?: bigint;
  /** Up to maxRows rows of one sealed segment (the cut used while there is no checkpoint file). */
  oneSegment?: boolean;
}

/** Records read for a batch; `more`: a oneSegment read stopped at the end of a segment, before another sealed one. */
export interface Batch {
  records: QueuedRecord[];
  rows: number;
  more: boolean;
}

/**
 * The consumer's read position in the log and the batches read from it: records after `committed`,
 * up to maxRows rows, or exactly up to `upTo`, or up to maxRows rows of one sealed segment. Damaged
 * regions, and records whose CRCs match but whose framing does not, go to the dead-letter folder
 * and reading goes on. Each read advances the position; `position` can be set back to retry.
 */
export interface BatchReader {
  /** Where the next read starts. */
  position: Position;
  /** Reads the next batch of records after `committed`. Throws a StepError when the log cannot be read. */
  read(committed: bigint, limit?: BatchLimit): Promise<Batch>;
}

/** The parts of a record's payload, or undefined when it is malformed (its CRCs matched, its framing does not). */
const partsOf = (payload: Buffer): TableRows[] | undefined => {
  try {
    return decodeParts(payload);
  } catch {
    return undefined;
  }
};

/** Creates a batch reader at the start of `log`. */
export function createBatchReader(options: BatchReaderOptions): BatchReader {
  const { log, deadLetter } = options;
  const self: BatchReader = {
    position: log.start,
    async read(committed, opts = {}) {
      const records: QueuedRecord[] = [];
      let rows = 0;
      let segment: bigint | undefined;
      for (;;) {
        const { from, sealed, items } = await attempt('read the queue', () => log.read(self.position));
        if (opts.oneSegment && (!sealed || (segment !== undefined && from.first !== segment))) return { records, rows, more: sealed && items.length > 0 };
        self.position = from;
        segment ??= from.first;
        if (items.length === 0) return { records, rows, more: false };
        for (const item of items) {
          if (item.kind === 'damage') {
            await deadLetter.damaged(item.damage);
          } else if (item.record.seq > committed) {
            if (opts.upTo !== undefined ? item.record.seq > opts.upTo : rows >= options.maxRows) return { records, rows, more: false };
            const { seq, payload, start, end } = item.record;
            const parts = partsOf(payload);
            if (parts) {
              records.push({ seq, parts });
              rows += parts.reduce((n, p) => n + p.rows, 0);
            } else {
              await deadLetter.damaged({ segment: segmentName(item.next.first), start, end, bytes: payload });
            }
          }
          self.position = item.next;
        }
      }
    },
  };
  return self;
}

/** What the consumer does with a batch it read: see planBatch. */
export type BatchPlan = { kind: 'deliver'; plan: Plan } | { kind: 'none'; more: boolean; skipTo: bigint | undefined };

/**
 * Decides what follows a read: records were read, so deliver them as the plan (first..last);
 * or none were: without the checkpoint file (`fixedCut`), go on while the read says there is
 * `more`; with it, every record up to `horizon` (the durable sequence number before the read) was
 * read, so past `committed` there were only damaged ones: the committed mark moves to it (`skipTo`).
 */
export function planBatch(batch: Batch, at: { fixedCut: boolean; horizon: bigint; committed: bigint }): BatchPlan {
  const first = batch.records[0];
  const last = batch.records.at(-1);
  if (first && last) return { kind: 'deliver', plan: { from: first.seq, to: last.seq } };
  if (at.fixedCut) return { kind: 'none', more: batch.more, skipTo: undefined };
  return { kind: 'none', more: false, skipTo: at.horizon > at.committed ? at.horizon : undefined };
}
