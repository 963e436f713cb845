import { randomUUID } from 'node:crypto';
import { RetryableError } from './errors.js';
import type { TableRows } from './formats.js';
import { createPayloadPool, type PayloadPool } from './payload-pool.js';
import { rowChunks } from './row-chunks.js';
import type { Writer } from './writer.js';

/** Options for createBatcher. */
export interface BatcherOptions {
  writer: Writer;
  /** A table's batch is written once it has this many rows... */
  maxRows: number;
  /** ...or this long after its first row arrived. */
  maxDelayMs: number;
  /**
   * Inserts of one table at a time (default unbounded). A batch that is due while this many are
   * running waits and keeps gathering rows (up to maxRows, then it waits full): fewer, larger inserts
   * for an engine that runs them one after the other anyway. A waiting batch's retries end
   * max_elapsed after it began to wait, so waiting adds nothing to how long a client waits at most.
   */
  maxInFlight?: number | undefined;
  /**
   * A batch of at least `rows` rows is due once no rows came for `ms`, before maxDelayMs: its senders
   * wait for it (ack: stored), so when arrivals pause, waiting out the delay only adds latency. None:
   * batches go at maxRows or maxDelayMs only.
   */
  quiet?: { rows: number; ms: number } | undefined;
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
  /** When rows last came (performance.now()), and the timer that checks for a pause since, once it holds `quiet.rows`. */
  lastAdd: number;
  quietTimer: NodeJS.Timeout | undefined;
  /** Its time is up, but it waits for an insert of its table to end. */
  due: boolean;
  /** When it began to wait for an insert slot: its insert's retries end max_elapsed after it, not after a wait plus max_elapsed. */
  waitingSince: number | undefined;
}

/** Batch payloads kept for reuse: two of up to 8 MiB (a full batch of ordinary spans is ~6 MB), for 10 s after the last batch. */
const PAYLOAD_POOL = { maxBuffers: 2, maxBytes: 8 * 1024 * 1024, idleMs: 10_000 };

/**
 * A batch's rows as one payload, and what frees it once its insert has ended. Chunks joined into a
 * pooled payload are given back at once; a lone chunk is the payload itself.
 */
function payloadOf(payloads: PayloadPool, chunks: readonly Buffer[]): { payload: Buffer; free: () => void } {
  const payload = payloads.join(chunks);
  if (chunks.length === 1) return { payload, free: () => rowChunks.release(payload) };
  for (const c of chunks) rowChunks.release(c);
  return { payload, free: () => payloads.release(payload) };
}

/** Calls `onQuiet` once no rows came to `p` for `quietMs` (checking in `delay` ms, then again for the rest). */
function watchQuiet(p: Pending, quietMs: number, delay: number, onQuiet: () => void): void {
  p.quietTimer = setTimeout(() => {
    const left = p.lastAdd + quietMs - performance.now();
    if (left > 0) watchQuiet(p, quietMs, left, onQuiet);
    else onQuiet();
  }, delay);
}

/** Creates a batcher over a writer; each batch gets one deduplication token for all its retries. */
export function createBatcher(options: BatcherOptions): Batcher {
  /** Each table's open batch, its full batches waiting for an insert slot, and its inserts running. */
  const [tables, full, running] = [new Map<string, Pending>(), new Map<string, Pending[]>(), new Map<string, number>()];
  const maxInFlight = options.maxInFlight ?? Infinity;
  const inFlight = new Set<Promise<void>>();
  let pendingRows = 0;
  const payloads = createPayloadPool(PAYLOAD_POOL);

  const busy = (table: string): boolean => (running.get(table) ?? 0) >= maxInFlight;
  /** Takes the open batch of `table` out of the map (new rows start a new one). */
  const take = (table: string, p: Pending): Pending => {
    tables.delete(table);
    clearTimeout(p.timer);
    clearTimeout(p.quietTimer);
    return p;
  };
  const write = (table: string, p: Pending): void => {
    pendingRows -= p.rows;
    running.set(table, (running.get(table) ?? 0) + 1);
    const { payload, free } = payloadOf(payloads, p.chunks);
    const done = options.writer.write(table, payload, p.rows, randomUUID(), undefined, p.waitingSince).then((result) => {
      free();
      if (result.status === 'ok') for (const w of p.waiters) w.resolve();
      else for (const w of p.waiters) w.reject(new RetryableError(`storage did not take the data: ${result.error.message}`, 5_000));
      running.set(table, (running.get(table) ?? 1) - 1);
      next(table);
    });
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };
  /** Starts the next waiting batch of `table` when an insert slot is free: a full one first, else the open one once due. */
  const next = (table: string): void => {
    if (busy(table)) return;
    const waiting = full.get(table)?.shift();
    if (waiting) return write(table, waiting);
    const open = tables.get(table);
    if (open?.due) write(table, take(table, open));
  };
  /** Writes the open batch of `table` now, or, while its inserts are busy, marks it due (or sets it aside when full). */
  const flush = (table: string, isFull: boolean): void => {
    const p = tables.get(table);
    if (!p || p.rows === 0) return;
    if (!busy(table)) return write(table, take(table, p));
    p.waitingSince ??= Date.now();
    if (!isFull) {
      p.due = true;
      return;
    }
    const queue = full.get(table) ?? [];
    queue.push(take(table, p));
    full.set(table, queue);
  };

  const addOne = (part: TableRows): Promise<void> =>
    new Promise((resolve, reject) => {
      let p = tables.get(part.table);
      if (!p) {
        p = { chunks: [], rows: 0, waiters: [], timer: setTimeout(() => flush(part.table, false), options.maxDelayMs), lastAdd: 0, quietTimer: undefined, due: false, waitingSince: undefined };
        tables.set(part.table, p);
      }
      p.chunks.push(part.data);
      p.rows += part.rows;
      pendingRows += part.rows;
      p.waiters.push({ resolve, reject });
      if (p.rows >= options.maxRows) return flush(part.table, true);
      const [quiet, open] = [options.quiet, p];
      if (quiet) p.lastAdd = performance.now();
      if (quiet && p.quietTimer === undefined && p.rows >= quiet.rows) watchQuiet(p, quiet.ms, quiet.ms, () => void (tables.get(part.table) === open && !open.due && flush(part.table, false)));
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
        for (const table of [...tables.keys()]) flush(table, true);
        // Each insert that ends starts the next one waiting for its table.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      })();
      return closing;
    },
  };
}
