/** Callers waiting for storage to become ready. */
export interface ReadyWaiters {
  /** Resolves true at the next wake(true), false at wake(false) or once `signal` aborts (at once if it has). */
  wait(signal?: AbortSignal): Promise<boolean>;
  /** Resolves every waiter with `ready`. */
  wake(ready: boolean): void;
}

/** Creates an empty set of waiters. */
export function createReadyWaiters(): ReadyWaiters {
  const waiters = new Set<(ready: boolean) => void>();
  return {
    wait(signal) {
      if (signal?.aborted) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const done = (ready: boolean): void => {
          waiters.delete(done);
          signal?.removeEventListener('abort', aborted);
          resolve(ready);
        };
        const aborted = (): void => done(false);
        waiters.add(done);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    },
    wake(ready) {
      for (const w of [...waiters]) w(ready);
    },
  };
}
