import type { QueryScheduler } from './scheduler.js';

/** Options for createCallQueries. */
export interface CallQueriesOptions {
  scheduler: QueryScheduler;
  /** Whose turn the call's queries take (see `callerKey`). */
  key: string;
  /**
   * Queries of the call handed to the scheduler at once (`query.max_concurrent_per_tenant`): the
   * rest wait inside the call, so a call's own queries never use up each other's queue timeout.
   */
  parallel: number;
  /** The call's signal (client cancel, deadline): once it aborts, no more of its queries start. */
  signal: AbortSignal;
}

/** Runs the storage work of one call. */
export type CallQueries = <T>(work: () => Promise<T>) => Promise<T>;

/**
 * The storage queries of one call, run through the fair scheduler `parallel` at a time. The first
 * query that fails ends the call: those waiting (in the call or for a slot) reject with its error and
 * never start; those already running go on to their end, their results unused.
 */
export function createCallQueries(options: CallQueriesOptions): CallQueries {
  const controller = new AbortController();
  const signal = controller.signal;
  if (options.signal.aborted) controller.abort(options.signal.reason);
  else options.signal.addEventListener('abort', () => controller.abort(options.signal.reason), { once: true });
  let inFlight = 0;
  const turns: Array<() => void> = [];
  signal.addEventListener('abort', () => {
    for (const wake of turns.splice(0)) wake();
  }, { once: true });
  const aborted = (): Error => (signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));

  return async <T>(work: () => Promise<T>): Promise<T> => {
    while (inFlight >= options.parallel && !signal.aborted) await new Promise<void>((resolve) => turns.push(resolve));
    if (signal.aborted) throw aborted();
    inFlight += 1;
    try {
      return await options.scheduler.run(options.key, work, signal);
    } catch (err) {
      if (!signal.aborted) controller.abort(err);
      throw err;
    } finally {
      inFlight -= 1;
      turns.shift()?.();
    }
  };
}
