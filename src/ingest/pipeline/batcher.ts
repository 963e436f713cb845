import { randomUUID } from 'node:crypto';
import { Histogram, type Registry } from 'prom-client';
import { RetryableError } from './errors.js';
import type { TableRows } from './formats.js';
import { createPayloadPool } from './payload-pool.js';
import type { Writer } from './writer.js';

/** Options for createBatcher. */
export interface BatcherOptions {
  writer: Writer;
  /** A table's batch is written once it has this many rows... */
  maxRows: number;
  /** ...or this long after its first row arrived. */
  maxDelayMs: number;
  metrics: Registry;
}

/** Groups rows per table into large inserts (ClickHouse wants few, big inserts). */
export interface Batcher {
  /**
   * Adds rows to their tables' batches. Resolves once every row is stored in ClickHouse; rejects
   * with RetryableError when storage could not take them (nothing acknowledged, so nothing lost).
   */
  add(parts: readonly TableRows[]): Promise<void>;
  /** Rows waiting in batches. */
  readonly pending: number;
  /** Writes every batch now and waits for all writes in flight. Safe to call twice. */
  shutdown(): Promise<void>;
}

interface Pending {
  chunks: Buffer[];
  rows: number;
  waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
  timer: NodeJS.Timeout | undefined;
}

/** Batch payloads kept for reuse: two of up to 8 MiB (a full batch of ordinary spans is ~6 MB), for 10 s after the last batch. */
const PAYLOAD_POOL = { maxBuffers: 2, maxBytes: 8 * 1024 * 1024, idleMs: 10_000 };

/** Creates a batcher over a writer; each batch gets one deduplication token for all its retries. */
export function createBatcher(options: BatcherOptions): Batcher {
  const tables = new Map<string, Pending>();
  const inFlight = new Set<Promise<void>>();
  let pendingRows = 0;
  const payloads = createPayloadPool(PAYLOAD_POOL);
  const size = new Histogram({
    name: 'heimdall_batch_rows',
    help: 'Rows per insert, by table.',
    labelNames: ['table'] as const,
    buckets: [1, 10, 100, 500, 1000, 5000, 10000, 50000, 100000],
    registers: [options.metrics],
  });

  const flush = (table: string): void => {
    const p = tables.get(table);
    if (!p || p.rows === 0) return;
    tables.delete(table);
    clearTimeout(p.timer);
    pendingRows -= p.rows;
    size.observe({ table }, p.rows);
    const payload = payloads.join(p.chunks);
    const write = options.writer.write(table, payload, p.rows, randomUUID()).then((result) => {
      payloads.release(payload);
      if (result.status === 'ok') for (const w of p.waiters) w.resolve();
      else for (const w of p.waiters) w.reject(new RetryableError(`storage did not take the data: ${result.error.message}`, 5_000));
    });
    inFlight.add(write);
    void write.finally(() => inFlight.delete(write));
  };

  const addOne = (part: TableRows): Promise<void> =>
    new Promise((resolve, reject) => {
      let p = tables.get(part.table);
      if (!p) {
        p = { chunks: [], rows: 0, waiters: [], timer: undefined };
        tables.set(part.table, p);
        p.timer = setTimeout(() => flush(part.table), options.maxDelayMs);
      }
      p.chunks.push(part.data);
      p.rows += part.rows;
      pendingRows += part.rows;
      p.waiters.push({ resolve, reject });
      if (p.rows >= options.maxRows) flush(part.table);
    });

  let closing: Promise<void> | undefined;
  return {
    async add(parts) {
      await Promise.all(parts.filter((p) => p.rows > 0).map(addOne));
    },
    get pending() {
      return pendingRows;
    },
    shutdown() {
      closing ??= (async () => {
        for (const table of [...tables.keys()]) flush(table);
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      })();
      return closing;
    },
  };
}
