import { Severity } from '../gen/heimdall/v1/events_pb.js';
import { submitAgentEvents, type AgentEventSink } from '../events/events.js';
import type { Logger } from '../telemetry/logger.js';
import { OVER_LIMIT_EVENT, type OverLimitSink } from './over-limit.js';

/**
 * The sink that writes records as events (`ratelimit.over_limit`, category `ratelimit`, payload
 * {domain, descriptor, entity, hits, window_seconds}) through the ingest pipeline. Never throws.
 */
export function overLimitEvents(pipeline: AgentEventSink, windowMs: number, logger: Logger): OverLimitSink {
  return (records) =>
    submitAgentEvents(
      pipeline,
      records.map((c) => ({
        eventType: OVER_LIMIT_EVENT,
        severity: Severity.WARNING,
        category: 'ratelimit',
        message: `${c.hits} hits over the limit ${c.descriptor} (domain ${c.domain}) for ${c.entity}`,
        actorId: c.entity,
        status: 'over_limit',
        payload: { domain: c.domain, descriptor: c.descriptor, entity: c.entity, hits: c.hits, window_seconds: windowMs / 1000 },
      })),
      logger,
    );
}
