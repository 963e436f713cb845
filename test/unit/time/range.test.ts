import { create } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentError } from '../../../src/errors/agent-error.js';
import { HOUR_NS, timeRange, timestamp } from '../../../src/time/range.js';

const ts = (nanos: bigint) => create(TimestampSchema, timestamp(nanos));

describe('time ranges', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('turn nanoseconds, as a bigint or as ClickHouse text, into a protobuf Timestamp', () => {
    expect(timestamp(1_700_000_000_123_456_789n)).toEqual({ seconds: 1_700_000_000n, nanos: 123_456_789 });
    expect(timestamp('1700000000123456789')).toEqual({ seconds: 1_700_000_000n, nanos: 123_456_789 });
    expect(timestamp(0n)).toEqual({ seconds: 0n, nanos: 0 });
  });

  it('take both ends from the request when given', () => {
    expect(timeRange(ts(1_000n), ts(5_000_000_001n), HOUR_NS)).toEqual({ start: 1_000n, end: 5_000_000_001n });
  });

  it('end now and start the default span before the end by default', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const now = 1_700_000_000_000n * 1_000_000n;
    expect(timeRange(undefined, undefined, HOUR_NS)).toEqual({ start: now - HOUR_NS, end: now });
    expect(timeRange(ts(now - 5n), undefined, HOUR_NS)).toEqual({ start: now - 5n, end: now });
    expect(timeRange(undefined, ts(now - HOUR_NS), 24n * HOUR_NS)).toEqual({ start: now - 25n * HOUR_NS, end: now - HOUR_NS });
  });

  it('refuse an empty or reversed range with INVALID_ARGUMENT', () => {
    for (const [start, end] of [
      [10n, 10n],
      [11n, 10n],
    ] as const) {
      let thrown: unknown;
      try {
        timeRange(ts(start), ts(end), HOUR_NS);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(AgentError);
      expect(thrown).toMatchObject({ code: 'invalid_argument', message: 'start_time: must be before end_time' });
    }
  });
});
