import { Counter, type Registry } from 'prom-client';
import type { AutomationConfig, HoneypotConfig } from '../config/automation.js';
import { submitAgentEvents, type AgentEventSink } from '../events/events.js';
import { Severity } from '../gen/heimdall/v1/events_pb.js';
import { blockNotification, type Notify } from '../notify/notification.js';
import type { Logger } from '../telemetry/logger.js';
import type { HoneypotHitReport } from './honeypot-hits.js';
import type { HoneypotAcks } from './honeypot-overlay.js';
import type { SecurityChanges } from './security-changes.js';
import { SYSTEM_ACTOR, type SecurityPolicy } from './security-policy.js';

/** The event type of a honeypot hit. */
export const HONEYPOT_HIT_EVENT = 'security.honeypot.hit';
/** Reports waiting to be processed at most; the excess blocks nothing here (the worker's overlay still blocks for the TTL). */
const MAX_QUEUED = 1_000;
/** Failed reports remembered at most (until their blocks end), so the worker keeps their blocks: as many as its overlay holds. */
const MAX_FAILED = 10_000;

/** Options for createHoneypots. */
export interface HoneypotsOptions {
  /** `ratelimit.security.automation.honeypots`: each one's block_ttl and webhook. */
  config: AutomationConfig['honeypots'];
  changes: Pick<SecurityChanges, 'automatic'>;
  /** Who is blocked already (not blocked again). */
  policy: Pick<SecurityPolicy, 'check'>;
  /** Where hits are audited (heimdall_events, through the ingest pipeline). */
  pipeline: AgentEventSink;
  /** Called for each automatic block of a honeypot with a webhook; none: nobody is told. */
  notify?: Notify | undefined;
  /** Called once per hit processed, with its entities that are not allowed (those it blocks or found blocked already by another agent), for the rules' honeypot_hits signal. */
  onHit?: ((count: number, entities: string[]) => void) | undefined;
  /** Called once a report is processed: its acknowledgement (acks) is for the worker to hear, in a new snapshot. */
  onProcessed: () => void;
  metrics: Registry;
  logger: Logger;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
}

/** The main thread's side of honeypots: blocks each hit's entities for real, audits the hit, tells the webhook and the rules. */
export interface Honeypots {
  /** Queues a worker's hit report; processed in order, one at a time. Never throws. */
  report(hit: HoneypotHitReport): void;
  /** The reports processed so far, for the worker (snapshots carry them). */
  acks(): HoneypotAcks;
  /** Resolves once the reports queued so far are processed. */
  idle(): Promise<void>;
}

/** How long a honeypot's block lasts, in whole seconds (as blocks are made). */
const blockSeconds = (h: HoneypotConfig): number => Math.ceil(h.block_ttl / 1000);

const splitEntity = (entity: string) => ({ key: entity.slice(0, entity.indexOf('=')), value: entity.slice(entity.indexOf('=') + 1) });

/**
 * Creates the honeypots' main-thread side. Each report's entities not blocked already are blocked with
 * `changes.automatic` (stored, shared through Redis, audited as executed by the system actor) for the
 * honeypot's block_ttl (in whole seconds, rounded up); the hit is audited as `security.honeypot.hit`
 * (category security, WARNING) at the time of the hit (not of its processing, which waits for the blocks). A block that fails (storage down) is logged and its report listed as
 * failed, so the worker's own block holds until it ends. At most MAX_QUEUED reports wait; the excess
 * is counted in `heimdall_security_honeypot_reports_unprocessed_total` and treated as failed.
 */
export function createHoneypots(options: HoneypotsOptions): Honeypots {
  const { policy, logger } = options;
  const now = options.now ?? Date.now;
  const byName = new Map(options.config.map((h) => [h.name, h]));
  const unprocessed = new Counter({ name: 'heimdall_security_honeypot_reports_unprocessed_total', help: `Honeypot hit reports not processed: over ${MAX_QUEUED} waiting (their entities stay blocked by the rate-limit worker only, until their block_ttl ends).`, registers: [options.metrics] });
  let acked = 0;
  const failed = new Map<number, number>(); // report -> when its blocks end
  let queued = 0;
  let chain = Promise.resolve();
  const fail = (hit: HoneypotHitReport, h: HoneypotConfig | undefined): void => {
    if (failed.size >= MAX_FAILED) failed.delete(failed.keys().next().value as number);
    failed.set(hit.seq, hit.time + (h?.block_ttl ?? 0));
  };

  /** Blocks the entities not blocked already; answers those blocked, and whether any block failed. */
  const block = async (h: HoneypotConfig, hit: HoneypotHitReport): Promise<{ blocked: string[]; ok: boolean }> => {
    const blocked: string[] = [];
    let ok = true;
    for (const entity of hit.block) {
      const v = policy.check([splitEntity(entity)]);
      if (v.refuse && v.reason === 'blocked') continue;
      try {
        const a = await options.changes.automatic({ kind: 'block', entity, reason: `honeypot ${h.name}`, durationSeconds: blockSeconds(h) }, `honeypot ${h.name} hit in ${hit.domain}: ${hit.descriptor}`);
        if (!a) continue;
        blocked.push(entity);
        if (h.webhook) options.notify?.(h.webhook, blockNotification(h.name, a, entity, blockSeconds(h), `honeypot ${h.name} was hit`));
      } catch (err) {
        ok = false;
        logger.error({ err, honeypot: h.name, entity }, 'cannot block a honeypot hit entity; the rate-limit worker blocks it until its block_ttl ends');
      }
    }
    return { blocked, ok };
  };

  const handle = async (hit: HoneypotHitReport): Promise<void> => {
    const h = byName.get(hit.honeypot);
    if (!h) return void logger.error({ honeypot: hit.honeypot }, 'a honeypot hit names no configured honeypot');
    const { blocked, ok } = await block(h, hit);
    if (!ok) fail(hit, h);
    const message = `honeypot ${h.name} hit in ${hit.domain}: ${hit.descriptor}; ${blocked.length > 0 ? `blocked ${blocked.join(', ')}` : 'nothing blocked'}`;
    submitAgentEvents(options.pipeline, [{ eventType: HONEYPOT_HIT_EVENT, severity: Severity.WARNING, category: 'security', message, actorId: SYSTEM_ACTOR, payload: { honeypot: h.name, domain: hit.domain, descriptor: hit.descriptor, entries: hit.entries, blocked }, time: hit.time }], logger);
    options.onHit?.(1, hit.block);
  };

  return {
    report(hit) {
      if (queued >= MAX_QUEUED) {
        unprocessed.inc();
        // Acknowledged with the reports before it (acked only grows as those are processed).
        return fail(hit, byName.get(hit.honeypot));
      }
      queued += 1;
      chain = chain
        .then(() => handle(hit))
        .catch((err: unknown) => void (fail(hit, byName.get(hit.honeypot)), logger.error({ err }, 'honeypot hit not processed')))
        .finally(() => {
          queued -= 1;
          acked = Math.max(acked, hit.seq);
          options.onProcessed();
        });
    },
    acks() {
      const t = now();
      for (const [seq, until] of failed) if (until <= t) failed.delete(seq);
      return { acked, failed: [...failed.keys()] };
    },
    idle: () => chain,
  };
}
