import { Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { ActionState } from '../gen/heimdall/v1/security_pb.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { ServiceRegistrar } from '../server/service-registry.js';
import type { Storage } from '../storage/storage.js';
import type { Notify } from '../notify/notification.js';
import type { Logger } from '../telemetry/logger.js';
import { createAutomation, type Automation } from './automation/engine.js';
import type { HoneypotHitReport } from './honeypot-hits.js';
import { createHoneypots } from './honeypots.js';
import { createActionBook } from './security-actions.js';
import { createSecurityChanges } from './security-changes.js';
import { createSecurityPolicy, MODE_NAMES, MODES, type SecuritySnapshot } from './security-policy.js';
import { addSecurityService } from './security-service.js';
import { createSecurityShare } from './security-share.js';
import { createSecurityStore } from './security-store.js';

/** Options for createSecurity. */
export interface SecurityOptions {
  /** The `ratelimit.security` section: first mode, elevated factor, lockdown allow list, approval TTL, incident threshold. */
  config: Config['ratelimit']['security'];
  /** The `ratelimit.redis` section; with it, blocks and mode are shared with every agent on the same Redis. */
  redis?: Config['ratelimit']['redis'];
  /** Where SecurityService is added. */
  services: ServiceRegistrar;
  storage: Storage;
  /** Where audit events go (heimdall_events, through the ingest pipeline). */
  pipeline: Pipeline;
  logger: Logger;
  metrics: Registry;
  health: HealthRegistry;
  /** Hands automation's notifications (rules', honeypots' automatic actions) to their webhooks; none: nobody is told. */
  notify?: Notify | undefined;
}

/** The security layer: mode, block list and approvals; state kept in storage, replicated to the rate-limit worker (which checks against it). */
export interface Security {
  readonly name: 'security';
  /** The mode and blocks in force now (for the rate-limit worker's replica). */
  snapshot(): SecuritySnapshot;
  /** Calls `listener` after every change to the mode or the blocks (local, approved, or from Redis); returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** The automation rules (`automation.rules`): they take the rate-limit worker's signals. */
  readonly automation: Pick<Automation, 'signals'>;
  /** Takes a honeypot hit the rate-limit worker reports: its entities are blocked, the hit audited (and counted by the rules). Never throws. */
  honeypotHit(hit: HoneypotHitReport): void;
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Creates the security layer and adds `heimdall.v1.SecurityService` (scope `admin`). Every change
 * goes through an action: requested by one admin, approved (and executed) by another, or rejected,
 * or expired; each transition is stored and audited as an event (category `security`). Wires the
 * policy (mode, blocks), the action book, the store, the Redis share, the service and the automation rules.
 */
export function createSecurity(options: SecurityOptions): Security {
  const logger = options.logger.child({ component: 'security' });
  const reporter = options.health.register('security', { gate: 'none' });
  const policy = createSecurityPolicy({ config: options.config });
  const book = createActionBook({ ttlMs: options.config.approval_ttl });
  const share = options.redis ? createSecurityShare({ redis: options.redis, logger }) : undefined;
  const modeGauge = new Gauge({ name: 'heimdall_security_mode', help: 'The security mode: 1 for the current one, by mode.', labelNames: ['mode'] as const, registers: [options.metrics] });
  const blockGauge = new Gauge({ name: 'heimdall_security_blocks', help: 'Entities blocked now.', registers: [options.metrics] });
  const listeners = new Set<() => void>();
  const report = (): void => {
    for (const listener of listeners) listener();
    for (const m of MODES) modeGauge.set({ mode: MODE_NAMES[m] }, m === policy.mode ? 1 : 0);
    const blocks = policy.blocks().length;
    blockGauge.set(blocks);
    const pending = book.all().filter((a) => a.state === ActionState.PENDING).length;
    reporter.set('ready', `mode ${MODE_NAMES[policy.mode]}, ${blocks} blocked, ${pending} pending`);
  };
  const store = createSecurityStore({ storage: options.storage });
  const changes = createSecurityChanges({ book, policy, store, share, pipeline: options.pipeline, onChange: report, metrics: options.metrics, logger });
  const automation = createAutomation({ config: options.config.automation, redis: options.redis, policy, changes, notify: options.notify, metrics: options.metrics, logger });
  const honeypots = createHoneypots({
    config: options.config.automation.honeypots,
    changes,
    policy,
    pipeline: options.pipeline,
    notify: options.notify,
    onHit: (count, entities) => automation.honeypotHits(count, entities),
    onProcessed: report,
    metrics: options.metrics,
    logger,
  });
  addSecurityService({ services: options.services, changes, policy, book, storage: options.storage, incidentThreshold: options.config.incident_threshold });

  let sweeper: NodeJS.Timeout | undefined;
  let restoring: Promise<void> | undefined;
  const stopping = new AbortController();
  /** Loads the stored state once storage is ready (waiting in the background until then). */
  const restore = async (): Promise<void> => {
    if (!(await options.storage.whenReady(stopping.signal)) || stopping.signal.aborted) return;
    await changes.restore();
  };
  return {
    name: 'security',
    snapshot: () => ({ mode: policy.mode, blocks: policy.blocks(), hits: honeypots.acks() }),
    automation,
    honeypotHit: (hit) => honeypots.report(hit),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {
      report();
      share?.subscribe((change) => changes.applyShared(change, 'redis'));
      // Automation decides only once the stored state is known: before it, a pin (or an admin's
      // mode) would look absent, and a shared decision would undo it on every agent.
      restoring = restore().then(
        () => void (stopping.signal.aborted || automation.start()),
        (err: unknown) => {
          reporter.set('degraded', `security state not restored (automation rules off): ${(err as Error).message}`);
          logger.error({ err }, 'cannot restore the security state; automation rules stay off');
        },
      );
      sweeper = setInterval(() => void changes.sweep(), 10_000);
      sweeper.unref();
    },
    async shutdown() {
      stopping.abort();
      clearInterval(sweeper);
      await automation.shutdown();
      await restoring;
      await honeypots.idle();
      share?.shutdown();
      reporter.set('stopping');
    },
  };
}
