import { TRACE_ID_TS } from '../storage/tables.js';
import type { Query } from './budget.js';

/** Seconds since the epoch of the first and last span of a set of traces. */
export interface TraceBounds {
  start: number;
  end: number;
}

/**
 * The time range of the traces' spans from the trace id lookup table, which bounds a scan of
 * otel_traces by trace id to the parts that can hold them; undefined when none is stored.
 */
export async function traceBounds(query: Query, traceIds: readonly string[]): Promise<TraceBounds | undefined> {
  if (traceIds.length === 0) return undefined;
  const [bounds] = await query<{ start: number | string | null; end: number | string | null }>(
    `SELECT toUnixTimestamp(min(Start)) AS start, toUnixTimestamp(max(End)) AS end, count() AS n FROM ${TRACE_ID_TS.name} WHERE TraceId IN {ids:Array(String)} HAVING n > 0`,
    { ids: traceIds },
  );
  if (bounds?.start === undefined || bounds.start === null || bounds.end === undefined || bounds.end === null) return undefined;
  return { start: Number(bounds.start), end: Number(bounds.end) };
}

/** SQL keeping otel_traces rows inside bounds given as {boundStart} and {boundEnd} (see boundParams). */
export const IN_BOUNDS = 'toDateTime(Timestamp) >= toDateTime({boundStart:UInt32}) AND toDateTime(Timestamp) <= toDateTime({boundEnd:UInt32})';

/** The parameters of IN_BOUNDS. */
export const boundParams = (b: TraceBounds) => ({ boundStart: b.start, boundEnd: b.end });
