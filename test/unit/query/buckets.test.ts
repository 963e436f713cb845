import { describe, expect, it } from 'vitest';
import { AgentError } from '../../../src/errors/agent-error.js';
import { bucketsOf, bucketStarts, MAX_BUCKETS, secondsInside } from '../../../src/query/buckets.js';

const S = 1_000_000_000n;
const T0 = 1_699_999_800n * S; // a multiple of 10 minutes since the epoch
const range = (fromS: bigint, toS: bigint) => ({ start: T0 + fromS * S, end: T0 + toS * S });

describe('bucketsOf', () => {
  it('picks the narrowest step whose epoch-aligned buckets number at most the request', () => {
    expect(bucketsOf(range(0n, 600n), 10)).toMatchObject({ stepNs: 60n * S, count: 10 });
    // An unaligned window needs one more bucket: 10 minutes from 0:30 takes 11 one-minute buckets, so 2 minutes.
    expect(bucketsOf(range(30n, 630n), 10)).toMatchObject({ stepNs: 120n * S, count: 6 });
    expect(bucketsOf(range(0n, 3600n), 0)).toMatchObject({ stepNs: 60n * S, count: 60 });
    expect(bucketsOf(range(0n, 1n), 0)).toMatchObject({ stepNs: S, count: 1 });
  });

  it('goes to whole days past 12 hours, and never past the request', () => {
    const month = range(0n, 31n * 86_400n);
    for (const n of [2, 3, 7, 30, 31, 60, MAX_BUCKETS]) {
      const b = bucketsOf(month, n);
      expect(b.count).toBeLessThanOrEqual(n);
      expect(b.count * Number(b.stepNs / S)).toBeGreaterThanOrEqual(31 * 86_400);
    }
    expect(bucketsOf(month, 2).stepNs % (86_400n * S)).toBe(0n);
  });

  it('starts buckets at multiples of the step and counts the seconds of each inside the window', () => {
    const r = range(30n, 630n);
    const b = bucketsOf(r, 10);
    const starts = bucketStarts(b);
    expect(starts.every((s) => s % b.stepNs === 0n)).toBe(true);
    expect(starts[0]).toBe(T0);
    expect(secondsInside(b, r)).toEqual([90, 120, 120, 120, 120, 30]);
  });

  it('refuses 1 and more than 300 buckets with INVALID_ARGUMENT naming max_buckets', () => {
    for (const n of [1, MAX_BUCKETS + 1]) {
      let err: unknown;
      try {
        bucketsOf(range(0n, 600n), n);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).violations?.[0]?.field).toBe('max_buckets');
    }
  });
});
