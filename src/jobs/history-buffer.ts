import type { Logger } from '../telemetry/logger.js';

/** What the buffer needs of a run state: its run's id (a newer state of the same run replaces it). */
interface Run {
  id: string;
}

/** Options for createHistoryBuffer. */
export interface HistoryBufferOptions<R extends Run> {
  /** Stores a batch of run states (the newest of each run); rejects when storage cannot take it. */
  insert(runs: R[]): Promise<void>;
  /** Whether storage answers now: the background flush waits for it. */
  ready(): boolean;
  logger: Logger;
  /** How often waiting states are flushed in the background (default 500 ms). */
  flushMs?: number;
  /** States kept waiting at most; past it the oldest are dropped and logged (default 50,000). */
  maxWaiting?: number;
}

/** The run states not stored yet: written behind, so a save never waits for or fails on storage. */
export interface HistoryBuffer<R extends Run> {
  /** Keeps a run's current state (a copy), replacing the one waiting. */
  save(run: R): void;
  /** The run's waiting state (a copy), if it has one. */
  waiting(id: string): R | undefined;
  /** Stores every state saved before the call; throws when storage cannot take it (it stays waiting). */
  flush(): Promise<void>;
  /** When a write last failed (ms; 0 when none has). */
  readonly failedAt: number;
  /** Flushes in the background while states wait and storage is ready. */
  start(): void;
  /** Stops the background flush and stores what waits (best effort: logged when storage cannot). Safe to call twice. */
  shutdown(): Promise<void>;
}

/** Creates an empty history buffer. */
export function createHistoryBuffer<R extends Run>(options: HistoryBufferOptions<R>): HistoryBuffer<R> {
  const { logger } = options;
  const maxWaiting = options.maxWaiting ?? 50_000;
  const waiting = new Map<string, R>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let failedAt = 0;

  const flushOnce = async (): Promise<void> => {
    if (waiting.size === 0) return;
    const batch = [...waiting.values()];
    try {
      await options.insert(batch);
    } catch (err) {
      failedAt = Date.now();
      throw err;
    }
    // A state saved while the insert ran is newer: keep it waiting.
    for (const r of batch) if (waiting.get(r.id) === r) waiting.delete(r.id);
  };
  const flush = async (): Promise<void> => {
    // A flush in flight may have taken its batch before the caller's states: wait, then flush again.
    if (flushing) await flushing.catch(() => undefined);
    flushing ??= flushOnce().finally(() => (flushing = undefined));
    return flushing;
  };

  return {
    save(run) {
      waiting.delete(run.id);
      waiting.set(run.id, { ...run });
      if (waiting.size > maxWaiting) {
        const oldest = waiting.keys().next().value;
        if (oldest !== undefined) waiting.delete(oldest);
        logger.warn({ waiting: waiting.size }, 'run history is not reaching storage: dropping the oldest waiting run state');
      }
    },
    waiting(id) {
      const w = waiting.get(id);
      return w && { ...w };
    },
    flush,
    get failedAt() {
      return failedAt;
    },
    start() {
      timer = setInterval(() => {
        if (waiting.size === 0 || !options.ready()) return;
        flush().catch((err: unknown) => logger.debug({ err, waiting: waiting.size }, 'run history not stored yet; retrying'));
      }, options.flushMs ?? 500);
      timer.unref();
    },
    async shutdown() {
      clearInterval(timer);
      timer = undefined;
      if (waiting.size === 0) return;
      await flush().catch((err: unknown) => logger.error({ err, runs: waiting.size }, 'run history not stored at shutdown'));
    },
  };
}
