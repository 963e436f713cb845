import { describe, expect, it } from 'vitest';
import { backoffMs, createWakeableSleep } from '../../../src/ingest/pipeline/backoff.js';

/** Never elapses within a test: naps below end only by wake or stop. */
const LONG = 600_000;

describe('backoff', () => {
  it('doubles from the first delay up to the longest', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffMs(a, 100, 1_000))).toEqual([100, 200, 400, 800, 1_000]);
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
