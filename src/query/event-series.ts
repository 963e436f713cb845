import type { MessageInitShape } from '@bufbuild/protobuf';
import { SEVERITY_NAMES } from '../events/events.js';
import type { GetEventSeriesRequest, GetEventSeriesResponseSchema } from '../gen/heimdall/v1/query_pb.js';
import { EVENTS } from '../storage/tables.js';
import { timestamp } from '../time/range.js';
import type { Query, Range } from './budget.js';
import { BUCKET_INDEX, bucketParams, bucketsOf, bucketStarts } from './buckets.js';
import { eventsWhere, windowParams } from './sql.js';

/**
 * GetEventSeries over `range` for `tenant` (empty: every tenant): heimdall events per bucket, one
 * series per severity from debug to critical (zeros included), as GetSummary counts them.
 */
export async function eventSeries(query: Query, range: Range, tenant: string, req: GetEventSeriesRequest): Promise<MessageInitShape<typeof GetEventSeriesResponseSchema>> {
  const b = bucketsOf(range, req.maxBuckets);
  const rows = await query<{ severity: number; bucket: string; n: string }>(
    `SELECT Severity AS severity, toString(${BUCKET_INDEX}) AS bucket, count() AS n FROM ${EVENTS.name} WHERE ${eventsWhere(tenant)} GROUP BY severity, bucket`,
    { ...windowParams(range, tenant), ...bucketParams(b) },
  );
  const series = SEVERITY_NAMES.slice(1).map((_, i) => ({ severity: i + 1, counts: Array.from({ length: b.count }, () => 0n) }));
  for (const r of rows) {
    const counts = series[Number(r.severity) - 1]?.counts;
    const i = Number(r.bucket);
    if (counts && i >= 0 && i < b.count) counts[i] = BigInt(r.n);
  }
  return { startTime: timestamp(range.start), endTime: timestamp(range.end), stepSeconds: Number(b.stepNs / 1_000_000_000n), bucketTimes: bucketStarts(b).map((ns) => timestamp(ns)), series };
}
