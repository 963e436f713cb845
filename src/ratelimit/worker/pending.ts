import { AgentError } from '../../errors/agent-error.js';

/** Calls handed to another thread and not answered yet, correlated by id, at most `max` at once. */
export interface PendingCalls<T> {
  /** A new call: its id and the promise its answer settles. Throws AgentError `resource_exhausted` when `max` are pending. */
  open(): { id: number; answer: Promise<T> };
  /** Settles call `id` (an unknown id is ignored: it was rejected by rejectAll). */
  resolve(id: number, value: T): void;
  reject(id: number, err: unknown): void;
  /** Rejects every pending call with `err` (the other thread is gone). */
  rejectAll(err: unknown): void;
  readonly size: number;
}

/** Creates the table; `what` names the calls in the resource_exhausted message. */
export function createPendingCalls<T>(max: number, what: string): PendingCalls<T> {
  const pending = new Map<number, { resolve(value: T): void; reject(err: unknown): void }>();
  let next = 0;
  const take = (id: number) => {
    const call = pending.get(id);
    pending.delete(id);
    return call;
  };
  return {
    open() {
      if (pending.size >= max) throw new AgentError('resource_exhausted', `${max} ${what} in flight (the most at once); retry later`);
      const id = (next = (next + 1) % Number.MAX_SAFE_INTEGER);
      const answer = new Promise<T>((resolve, reject) => pending.set(id, { resolve, reject }));
      return { id, answer };
    },
    resolve: (id, value) => take(id)?.resolve(value),
    reject: (id, err) => take(id)?.reject(err),
    rejectAll(err) {
      const calls = [...pending.values()];
      pending.clear();
      for (const call of calls) call.reject(err);
    },
    get size() {
      return pending.size;
    },
  };
}
