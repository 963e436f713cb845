import type { MessageInitShape } from '@bufbuild/protobuf';
import type { GetDashboardResponseSchema } from '../gen/heimdall/v1/security_pb.js';
import { EVENTS } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import { timestamp } from '../time/range.js';
import type { Query, Range } from './budget.js';

/** Entities and incidents the dashboard lists when the request says 0, and at most. */
const DEFAULT_TOP = 10;
const MAX_TOP = 1000;

/** How many of each list the dashboard answers for a request's `top`: 10 when 0, at most 1000. */
export const dashboardTop = (top: number): number => (top === 0 ? DEFAULT_TOP : Math.min(top, MAX_TOP));
/** Limits listed at most (each one configured, so few). */
const MAX_LIMITS = 1000;

/** What an over-limit dashboard shows. */
export type OverLimitDashboard = Pick<MessageInitShape<typeof GetDashboardResponseSchema>, 'overLimit' | 'topEntities' | 'incidents'>;

/** Options for overLimitDashboard. */
export interface OverLimitDashboardOptions {
  /** The event type of the rate limiter's over-limit records (payload: domain, descriptor, entity, hits). */
  eventType: string;
  /** Entities and incidents listed (0: 10; at most 1000). */
  top: number;
  /** Hits of one entity in one record that make an incident (`ratelimit.security.incident_threshold`). */
  incidentThreshold: number;
}

/**
 * The over-limit records in `range` (heimdall_events): hits by limit, the `top` entities by hits, and
 * the `top` records with at least `incidentThreshold` hits, most hits first. Every value travels as a
 * query parameter; each grouping returns a bounded number of rows.
 */
export async function overLimitDashboard(query: Query, range: Range, options: OverLimitDashboardOptions): Promise<OverLimitDashboard> {
  const top = dashboardTop(options.top);
  const params: QueryParams = { type: options.eventType, start: range.start.toString(), end: range.end.toString(), top, threshold: options.incidentThreshold };
  const from = `(SELECT Timestamp, JSONExtractString(Payload, 'domain') AS domain, JSONExtractString(Payload, 'descriptor') AS descriptor, JSONExtractString(Payload, 'entity') AS entity, JSONExtractUInt(Payload, 'hits') AS hits FROM ${EVENTS.name} WHERE EventType = {type:String} AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({end:Int64}))`;
  const [byLimit, entities, incidents] = await Promise.all([
    query<{ domain: string; descriptor: string; hits: string }>(`SELECT domain, descriptor, sum(hits) AS hits FROM ${from} GROUP BY domain, descriptor ORDER BY hits DESC, domain, descriptor LIMIT ${MAX_LIMITS}`, params),
    query<{ entity: string; hits: string }>(`SELECT entity, sum(hits) AS hits FROM ${from} GROUP BY entity ORDER BY hits DESC, entity LIMIT {top:UInt32}`, params),
    query<{ ts: string; domain: string; descriptor: string; entity: string; hits: string }>(
      `SELECT toString(toUnixTimestamp64Nano(Timestamp)) AS ts, domain, descriptor, entity, hits FROM ${from} WHERE hits >= {threshold:UInt64} ORDER BY hits DESC, ts DESC LIMIT {top:UInt32}`,
      params,
    ),
  ]);
  return {
    overLimit: byLimit.map((r) => ({ domain: r.domain, descriptor: r.descriptor, hits: BigInt(r.hits) })),
    topEntities: entities.map((r) => ({ entity: r.entity, hits: BigInt(r.hits) })),
    incidents: incidents.map((r) => ({ time: timestamp(BigInt(r.ts)), domain: r.domain, descriptor: r.descriptor, entity: r.entity, hits: BigInt(r.hits) })),
  };
}
