import type { Counter } from 'prom-client';
import { RetryableError } from './errors.js';
import { rowChunks } from './row-chunks.js';
import type { TableRows } from './formats.js';
import { isNoSpace } from './queue-files.js';
import type { QueueStatus } from './queue-status.js';
import type { SegmentLog } from './segment-log.js';
import { encodeParts, HEADER_BYTES } from './wal.js';

/** Options for createQueueAppends. */
export interface QueueAppendsOptions {
  log: SegmentLog;
  /** Bytes the log may hold; an append past it is refused. */
  maxBytes: number;
  /** Counts refused appends by reason (`full`, `write_failed`). */
  refused: Counter<'reason'>;
  status: QueueStatus;
}

/**
 * The way in to the queue: an append is taken only while open and within maxBytes, and resolves
 * once durable. Every refusal is a RetryableError (nothing of it was kept): shutting down, full
 * (counted `full`), or a write that did not complete (counted `write_failed`, and the `append`
 * condition of the status says why until an append or the consumer's release succeeds).
 */
export interface QueueAppends {
  /** Appends rows; resolves once they are fsynced. Throws RetryableError when refused. */
  append(parts: readonly TableRows[]): Promise<void>;
  /** Refuses every later append. Returns false when it was closed already. */
  close(): boolean;
}

/** Creates the appends of a queue over its log. */
export function createQueueAppends(options: QueueAppendsOptions): QueueAppends {
  const { log, maxBytes, refused, status } = options;
  let stopped = false;
  return {
    async append(parts) {
      if (stopped) throw new RetryableError('the agent is shutting down', 1_000);
      const buf = encodeParts(parts);
      // The rows are copied into the record: their chunks can be reused.
      for (const p of parts) rowChunks.release(p.data);
      if (log.bytes + buf.length + HEADER_BYTES > maxBytes) {
        refused.inc({ reason: 'full' });
        throw new RetryableError(`durable queue is full (${log.bytes} of ${maxBytes} bytes)`, 5_000);
      }
      try {
        await log.append(buf);
      } catch (err) {
        refused.inc({ reason: 'write_failed' });
        const code = (err as NodeJS.ErrnoException).code;
        status.set('append', `${isNoSpace(err) ? 'waiting for disk space: ' : ''}appends fail: ${code ?? (err as Error).message}`);
        throw new RetryableError(`durable queue write failed: ${(err as Error).message}`, 1_000);
      }
    },
    close() {
      if (stopped) return false;
      stopped = true;
      return true;
    },
  };
}
