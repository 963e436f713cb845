import type { MessageInitShape } from '@bufbuild/protobuf';
import type { HoneypotHitSchema } from '../gen/heimdall/v1/security_pb.js';
import { EVENTS } from '../storage/tables.js';
import { timestamp } from '../time/range.js';
import type { Query, Range } from './budget.js';
import { dashboardTop } from './over-limit-dashboard.js';

/** Options for honeypotHitsDashboard. */
export interface HoneypotHitsOptions {
  /** The event type of a honeypot hit (payload: honeypot, domain, descriptor, entries, blocked). */
  eventType: string;
  /** Hits listed (0: 10; at most 1000). */
  top: number;
}

/**
 * The honeypot hits audited in `range` (heimdall_events), newest first, at most `top`: each one's
 * honeypot, domain, hit descriptor's entries and the entities blocked for it. Every value travels as
 * a query parameter.
 */
export async function honeypotHitsDashboard(query: Query, range: Range, options: HoneypotHitsOptions): Promise<Array<MessageInitShape<typeof HoneypotHitSchema>>> {
  const params = { type: options.eventType, start: range.start.toString(), end: range.end.toString(), top: dashboardTop(options.top) };
  const rows = await query<{ ts: string; honeypot: string; domain: string; descriptor: string; blocked: string[] }>(
    `SELECT toString(toUnixTimestamp64Nano(Timestamp)) AS ts, JSONExtractString(Payload, 'honeypot') AS honeypot, JSONExtractString(Payload, 'domain') AS domain, JSONExtractString(Payload, 'descriptor') AS descriptor, JSONExtract(Payload, 'blocked', 'Array(String)') AS blocked FROM ${EVENTS.name} WHERE EventType = {type:String} AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({end:Int64}) ORDER BY Timestamp DESC LIMIT {top:UInt32}`,
    params,
  );
  return rows.map((r) => ({ time: timestamp(BigInt(r.ts)), honeypot: r.honeypot, domain: r.domain, entries: r.descriptor, blocked: r.blocked }));
}
