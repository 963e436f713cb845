import { describe, expect, it } from 'vitest';
import { backoffMs, createWakeableSleep, jittered } from '../../../src/time/backoff.js';

/** Never elapses within a test: naps below end only by wake or stop. */
const LONG = 600_000;

describe('backoff', () => {
  it('doubles from the first delay up to the longest', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffMs(a, 100, 1_000))).toEqual([100, 200, 400, 800, 1_000]);
  });

  it('stays at the longest delay however many attempts failed (no overflow to Infinity)', () => {
    expect(backoffMs(10_000, 1_000, 2 ** 31 - 1)).toBe(2 ** 31 - 1);
  });

  it('jitter stays within the spread', () => {
    const draws = Array.from({ length: 1_000 }, () => jittered(1_000, 0.2));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(800);
    expect(Math.max(...draws)).toBeLessThanOrEqual(1_200);
  });

  it('a wakeable nap ends on wake; a plain one ignores it; a stop ends both, and later naps at once', async () => {
    const stop = new AbortController();
    const sleep = createWakeableSleep(stop.signal);
    sleep.wake(); // Nobody napping: not kept.
    const ended: string[] = [];
    const plain = sleep.nap(LONG).then(() => ended.push('plain'));
    const wakeable = sleep.nap(LONG, true).then(() => ended.push('wakeable'));
    sleep.wake();
    await wakeable;
    expect(ended).toEqual(['wakeable']);
    stop.abort();
    await plain;
    await sleep.nap(LONG, true);
    expect(ended).toEqual(['wakeable', 'plain']);
  });
});
