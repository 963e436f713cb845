import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { AgentError } from '../errors/agent-error.js';

/** An hour in nanoseconds. */
export const HOUR_NS = 3_600_000_000_000n;

/** Nanoseconds of a protobuf Timestamp, or `fallback` when absent. */
function nanosOf(ts: Timestamp | undefined, fallback: bigint): bigint {
  return ts ? ts.seconds * 1_000_000_000n + BigInt(ts.nanos) : fallback;
}

/** A protobuf Timestamp from nanoseconds (a bigint, or decimal text as ClickHouse returns it). */
export function timestamp(nanos: string | bigint): MessageInitShape<typeof TimestampSchema> {
  const n = BigInt(nanos);
  return { seconds: n / 1_000_000_000n, nanos: Number(n % 1_000_000_000n) };
}

/** A time range from a request: [start, end), end now and start `defaultSpan` before it by default; INVALID_ARGUMENT when empty or reversed. */
export function timeRange(start: Timestamp | undefined, end: Timestamp | undefined, defaultSpan: bigint): { start: bigint; end: bigint } {
  const e = nanosOf(end, BigInt(Date.now()) * 1_000_000n);
  const s = nanosOf(start, e - defaultSpan);
  if (s >= e) throw new AgentError('invalid_argument', 'start_time: must be before end_time');
  return { start: s, end: e };
}
