import { backoffMs, jittered } from '../time/backoff.js';

/** Options for createReconnectLoop. */
export interface ReconnectLoopOptions {
  /** One check: resolves when storage answers, rejects why not. */
  attempt: () => Promise<void>;
  /** Time between checks while they succeed (ms). */
  intervalMs: number;
  /** Backoff after failed checks (ms): initial_interval, doubled per failure, at most max_interval; jittered ±20%. */
  retry: { initial_interval: number; max_interval: number };
  /** After a successful check. */
  onUp: () => void;
  /** After a failed check: its error, the failures in a row, and the delay (before jitter) to the next. */
  onDown: (err: unknown, failures: number, delayMs: number) => void;
}

/** The checks of a connection, repeated until stopped. */
export interface ReconnectLoop {
  /** Runs a check now, then keeps checking on a timer; resolves once this check (and its callback) is done. Never rejects. */
  check(): Promise<void>;
  /** Stops checking: no callback runs after it. Safe to call twice. */
  stop(): void;
}

/** Creates a check loop: every intervalMs while checks succeed, with backoff while they fail. */
export function createReconnectLoop(options: ReconnectLoopOptions): ReconnectLoop {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let failures = 0;
  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void check(), ms);
    timer.unref();
  };
  const check = async (): Promise<void> => {
    if (stopped) return;
    try {
      await options.attempt();
    } catch (err) {
      if (stopped) return;
      failures += 1;
      const delay = backoffMs(failures, options.retry.initial_interval, options.retry.max_interval);
      options.onDown(err, failures, delay);
      schedule(jittered(delay, 0.2));
      return;
    }
    if (stopped) return;
    options.onUp();
    failures = 0;
    schedule(options.intervalMs);
  };
  return {
    check,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
