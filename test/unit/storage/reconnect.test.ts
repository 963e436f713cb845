import { afterEach, describe, expect, it, vi } from 'vitest';
import { createReadyWaiters } from '../../../src/storage/ready-waiters.js';
import { createReconnectLoop } from '../../../src/storage/reconnect.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('storage reconnect loop', () => {
  it('checks every interval while checks succeed, backs off (doubling, capped, jittered) while they fail, and stops for good', async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // no jitter
    let fail = true;
    const events: string[] = [];
    const loop = createReconnectLoop({
      attempt: () => (fail ? Promise.reject(new Error('down')) : Promise.resolve()),
      intervalMs: 10_000,
      retry: { initial_interval: 100, max_interval: 400 },
      onUp: () => events.push('up'),
      onDown: (err, failures, delayMs) => events.push(`${(err as Error).message} #${failures} ${delayMs}`),
    });
    await loop.check();
    await vi.advanceTimersByTimeAsync(100 + 200 + 400 + 400);
    expect(events).toEqual(['down #1 100', 'down #2 200', 'down #3 400', 'down #4 400', 'down #5 400']);
    fail = false;
    await vi.advanceTimersByTimeAsync(400);
    expect(events.at(-1)).toBe('up');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(events.slice(-2)).toEqual(['up', 'up']);
    // After a success the backoff starts again from the first interval.
    fail = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(events.at(-1)).toBe('down #1 100');
    loop.stop();
    loop.stop();
    const n = events.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(events.length).toBe(n);
  });

  it('runs no callback for a check that ends after stop', async () => {
    let finish: () => void = () => undefined;
    const events: string[] = [];
    const loop = createReconnectLoop({
      attempt: () => new Promise<void>((resolve) => (finish = resolve)),
      intervalMs: 1_000,
      retry: { initial_interval: 100, max_interval: 100 },
      onUp: () => events.push('up'),
      onDown: () => events.push('down'),
    });
    const check = loop.check();
    loop.stop();
    finish();
    await check;
    expect(events).toEqual([]);
  });
});

describe('storage ready waiters', () => {
  it('resolves every waiter with the wake, and false for an aborted signal (at once when already aborted)', async () => {
    const waiters = createReadyWaiters();
    const a = waiters.wait();
    const b = waiters.wait();
    waiters.wake(true);
    expect(await Promise.all([a, b])).toEqual([true, true]);
    const stopped = waiters.wait();
    waiters.wake(false);
    expect(await stopped).toBe(false);
    const controller = new AbortController();
    const aborted = waiters.wait(controller.signal);
    controller.abort();
    expect(await aborted).toBe(false);
    expect(await waiters.wait(controller.signal)).toBe(false);
    // An aborted waiter is gone: a later wake resolves only the others.
    const later = waiters.wait();
    waiters.wake(true);
    expect(await later).toBe(true);
  });
});
