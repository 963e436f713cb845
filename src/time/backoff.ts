import { setTimeout as delay } from 'node:timers/promises';

/** Exponential backoff: `initialMs` for the first retry, doubled for each one after, at most `maxMs`. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
}

/** `ms` spread at random by ±`spread` (a fraction), so that many retrying clients do not fire together. */
export function jittered(ms: number, spread: number): number {
  return ms * (1 - spread + 2 * spread * Math.random());
}

/** Waits `ms`, or less once `signal` aborts. Never rejects. */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal }).catch(() => undefined);
}

/** A sleep that ends early when `signal` aborts, or, for a wakeable nap, when woken. */
export interface WakeableSleep {
  /** Waits `ms`, or less once stopped, or (`wakeable`) woken. Never rejects. */
  nap(ms: number, wakeable?: boolean): Promise<void>;
  /** Ends the wakeable nap in progress, if any (a wake while none is in progress is not kept). */
  wake(): void;
}

/** Creates a wakeable sleep stopped by `signal`. */
export function createWakeableSleep(signal: AbortSignal): WakeableSleep {
  let wakeUp: AbortController | undefined;
  return {
    async nap(ms, wakeable = false) {
      const woken = new AbortController();
      if (wakeable) wakeUp = woken;
      await sleep(ms, AbortSignal.any([signal, woken.signal]));
      if (wakeUp === woken) wakeUp = undefined;
    },
    wake() {
      wakeUp?.abort();
    },
  };
}
