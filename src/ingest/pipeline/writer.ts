import { Counter, Histogram, type Registry } from 'prom-client';
import { isDiskFull, StorageError } from '../../storage/errors.js';
import { insertOptionsFor, tableSpec } from '../../storage/tables.js';
import type { StorageTransport } from '../../storage/transport.js';
import type { Logger } from '../../telemetry/logger.js';
import { backoffMs, jittered, sleep } from '../../time/backoff.js';

/** Outcome of writing one batch: stored, or given up on (the caller decides what that means). */
export type WriteResult = { status: 'ok' } | { status: 'failed'; error: Error };

/** Options for createWriter. */
export interface WriterOptions {
  transport: () => StorageTransport;
  /** Why storage cannot take writes now (unreachable, not migrated, at its size budget); while it says so, attempts wait. */
  refusal: () => string | undefined;
  logger: Logger;
  metrics: Registry;
  /** First backoff after a failed insert. */
  initialIntervalMs: number;
  /** Longest backoff between retries. */
  maxIntervalMs: number;
  /** Give up after this long (0: retry until shutdown). */
  maxElapsedMs: number;
  /** Told the outcome of every insert attempt that reached storage: its bytes, and its error when it failed. */
  onAttempt?: ((bytes: number, error?: Error) => void) | undefined;
}

/**
 * When to give up on a batch that storage keeps refusing while it answers: once it was refused at
 * least `attempts` times over at least `afterMs`. Only refusals by a reachable storage count: not
 * while storage is unreachable or at its size budget, not network errors, not a full disk.
 */
export interface RefusalLimit {
  attempts: number;
  afterMs: number;
}

/** Inserts encoded batches into ClickHouse, retrying failures with exponential backoff and jitter. */
export interface Writer {
  /**
   * Inserts one batch, encoded in the table's insert format. Every retry carries the same deduplication token, so a batch
   * whose first attempt was stored but not confirmed is never stored twice. Gives up on an error retrying cannot fix, at
   * shutdown, past maxElapsedMs (counted from `since`, when the batch waited before its insert began), or past `limit`.
   * Never throws.
   */
  write(table: string, payload: Buffer, rows: number, token: string, limit?: RefusalLimit, since?: number): Promise<WriteResult>;
  /** Stops retrying: batches still retrying fail at their next backoff. Safe to call twice. */
  shutdown(): void;
}

/** Creates the storage writer. */
export function createWriter(options: WriterOptions): Writer {
  const logger = options.logger.child({ component: 'writer' });
  const counters = new Map<string, Counter<'table'>>();
  const count = (kind: 'sent' | 'send_failed', table: string, n: number): void => {
    // What a table's rows are, in the Collector's vocabulary (otelcol_exporter_sent_spans, ...).
    const item = tableSpec(table).item;
    const name = `heimdall_exporter_${kind}_${item}_total`;
    let c = counters.get(name);
    if (!c) {
      const what = item.replace('_', ' ');
      c = new Counter({ name, help: kind === 'sent' ? `${what} stored in ClickHouse, by table.` : `${what} whose insert was given up on, by table.`, labelNames: ['table'] as const, registers: [options.metrics] });
      counters.set(name, c);
    }
    c.inc({ table }, n);
  };
  const retries = new Counter({ name: 'heimdall_exporter_retries_total', help: 'Insert attempts that failed and were retried, by table.', labelNames: ['table'] as const, registers: [options.metrics] });
  const duration = new Histogram({
    name: 'heimdall_exporter_insert_duration_seconds',
    help: 'Time of one successful insert, by table.',
    labelNames: ['table'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [options.metrics],
  });
  const batchRows = new Histogram({
    name: 'heimdall_batch_rows',
    help: 'Rows per insert stored, by table (batches of ack: stored and of the durable queue).',
    labelNames: ['table'] as const,
    buckets: [1, 10, 100, 500, 1000, 5000, 10000, 50000, 100000],
    registers: [options.metrics],
  });
  const stop = new AbortController();

  return {
    async write(table, payload, rows, token, limit, since) {
      const started = since ?? Date.now();
      /** Refusals by a storage that answers (see RefusalLimit), and when the first one came. */
      const refused = { count: 0, since: 0 };
      for (let attempt = 1; ; attempt++) {
        const end = duration.startTimer({ table });
        let answering = false;
        try {
          const refusal = options.refusal();
          if (refusal !== undefined) throw new StorageError(refusal, { retryable: true });
          answering = true;
          try {
            await options.transport().insert(table, payload, { dedupToken: token, ...insertOptionsFor(table) });
          } catch (err) {
            options.onAttempt?.(payload.length, err as Error);
            throw err;
          }
          options.onAttempt?.(payload.length);
          end();
          count('sent', table, rows);
          batchRows.observe({ table }, rows);
          return { status: 'ok' };
        } catch (err) {
          const error = err as Error & { retryable?: boolean };
          const now = Date.now();
          if (answering && error instanceof StorageError && error.code !== undefined && !isDiskFull(error)) {
            if (refused.count === 0) refused.since = now;
            refused.count += 1;
          }
          const pastLimit = limit !== undefined && refused.count >= limit.attempts && now - refused.since >= limit.afterMs;
          const giveUp = error.retryable === false || stop.signal.aborted || pastLimit || (options.maxElapsedMs > 0 && now - started >= options.maxElapsedMs);
          if (giveUp) {
            count('send_failed', table, rows);
            logger.error({ err, table, rows, attempt, token }, 'insert failed; giving up on the batch');
            return { status: 'failed', error };
          }
          retries.inc({ table });
          const backoff = backoffMs(attempt, options.initialIntervalMs, options.maxIntervalMs);
          if (attempt === 1 || attempt % 10 === 0) logger.warn({ err, table, rows, attempt, backoffMs: backoff }, 'insert failed; retrying');
          await sleep(jittered(backoff, 0.5), stop.signal);
        }
      }
    },
    shutdown() {
      stop.abort();
    },
  };
}
