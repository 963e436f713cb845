import { Counter, type Registry } from 'prom-client';
import { submitAgentEvents, type AgentEventSink } from '../events/events.js';
import { Severity } from '../gen/heimdall/v1/events_pb.js';
import { ActionState } from '../gen/heimdall/v1/security_pb.js';
import type { Logger } from '../telemetry/logger.js';
import { STATE_NAMES, type ActionBook, type ActionChange, type ActionRecord } from './security-actions.js';
import { MODE_NAMES, SYSTEM_ACTOR, type PolicyChange, type SecurityPolicy } from './security-policy.js';
import type { SecurityShare } from './security-share.js';
import type { SecurityStore } from './security-store.js';

/** Options for createSecurityChanges. */
export interface SecurityChangesOptions {
  book: ActionBook;
  policy: SecurityPolicy;
  store: SecurityStore;
  /** With the Redis backend: where executed changes are shared. */
  share?: SecurityShare | undefined;
  /** Where audit events go (heimdall_events, through the ingest pipeline). */
  pipeline: AgentEventSink;
  /** Called after every change to the mode, the blocks or the actions (to report them). */
  onChange: () => void;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
  metrics: Registry;
  logger: Logger;
}

/**
 * Every change to the security state, as the service asks for it: each transition of an action is
 * stored first (a failed write changes nothing here), then kept, counted and audited as an event
 * (category `security`); an approval also executes its change: the change and the action stored,
 * then the change applied and shared (an agent that sees it can list the action that made it).
 */
export interface SecurityChanges {
  /** A pending action requested by `by`. */
  request(change: ActionChange, reason: string, by: string): Promise<ActionRecord>;
  /** Approves (and executes) pending action `id`; AgentErrors as ActionBook.approve says. */
  approve(id: string, by: string): Promise<ActionRecord>;
  /** Rejects pending action `id`; AgentErrors as ActionBook.reject says. */
  reject(id: string, by: string, reason: string): Promise<ActionRecord>;
  /** Expires pending actions past their time (a failed write leaves one pending) and drops blocks past theirs. Never throws. */
  sweep(): Promise<void>;
  /**
   * Executes `change` at once as SYSTEM_ACTOR (automation: no approval), stored, applied, shared and
   * audited like an approved action. A mode change while the mode is pinned is not made: undefined.
   */
  automatic(change: ActionChange, reason: string): Promise<ActionRecord | undefined>;
  /** Applies a change another agent made (`from` names where it came from). */
  applyShared(change: PolicyChange, from: string): void;
  /** Loads the stored state, then the shared one (newer: it wins), then sweeps. */
  restore(): Promise<void>;
}

const describe = (a: ActionRecord): string => (a.change.kind === 'mode' ? `set mode ${MODE_NAMES[a.change.mode]}` : `${a.change.kind} ${a.change.entity}`);

/** Creates the changes over the units given. */
export function createSecurityChanges(options: SecurityChangesOptions): SecurityChanges {
  const { book, policy, store, share, logger } = options;
  const now = options.now ?? Date.now;
  const transitions = new Counter({ name: 'heimdall_security_actions_total', help: 'Security action transitions, by state reached.', labelNames: ['state'] as const, registers: [options.metrics] });

  /** Stores, keeps, counts and audits a transition; an audit failure is logged, not raised. */
  const transition = async (a: ActionRecord, message: string): Promise<ActionRecord> => {
    await store.saveAction(a);
    book.record(a);
    const state = STATE_NAMES[a.state];
    transitions.inc({ state });
    const actor = a.state === ActionState.PENDING ? a.requestedBy : a.decidedBy;
    const eventType = `security.action.${a.state === ActionState.PENDING ? 'requested' : state}`;
    submitAgentEvents(options.pipeline, [{ eventType, severity: a.state === ActionState.EXECUTED ? Severity.WARNING : Severity.NOTICE, category: 'security', message, actorId: actor, payload: { action: a.id, change: a.change } }], logger);
    options.onChange();
    return a;
  };
  const decided = (a: ActionRecord): Promise<ActionRecord> => transition(a, `${describe(a)} ${STATE_NAMES[a.state]} by ${a.decidedBy}`);

  const apply = (change: PolicyChange, by: string): void => {
    const before = policy.apply(change);
    if (before !== undefined) logger.warn({ from: MODE_NAMES[before], to: MODE_NAMES[policy.mode], by }, 'security mode changed');
    options.onChange();
  };

  /**
   * Stores an executed action's change and the action, and only then applies the change here and
   * shares it: wherever the change is seen, the action that made it is listed already.
   */
  const execute = async (a: ActionRecord, message: string): Promise<ActionRecord> => {
    const c = a.change;
    let change: PolicyChange;
    if (c.kind === 'block') {
      const t = now();
      change = { kind: 'block', block: { entity: c.entity, reason: c.reason || a.reason, expiresAt: c.durationSeconds > 0 ? t + c.durationSeconds * 1000 : 0, createdAt: t, requestedBy: a.requestedBy, approvedBy: a.decidedBy } };
      await store.saveBlock(change.block);
    } else if (c.kind === 'unblock') {
      await store.removeBlock(c.entity);
      change = { kind: 'unblock', entity: c.entity };
    } else {
      await store.saveMode(c.mode, c.pin ?? false, a.decidedBy);
      change = { kind: 'mode', mode: c.mode, pinned: c.pin ?? false, by: a.decidedBy };
    }
    const done = await transition(a, message);
    apply(change, a.decidedBy);
    await share?.share(change);
    return done;
  };

  const sweep = async (): Promise<void> => {
    for (const a of book.expired()) await decided(a).catch(() => undefined);
    const dropped = policy.dropExpired();
    options.onChange();
    // Expired blocks leave the shared hash too (automatic blocks of a scan would pile up there).
    if (dropped.length > 0) await share?.forget(dropped);
  };

  return {
    request: (change, reason, by) => {
      const a = book.propose(change, reason, by);
      return transition(a, `${describe(a)} requested by ${by}: ${reason}`);
    },
    async approve(id, by) {
      await sweep();
      const a = book.approve(id, by);
      return execute(a, `${describe(a)} ${STATE_NAMES[a.state]} by ${a.decidedBy}`);
    },
    async reject(id, by, reason) {
      await sweep();
      return decided(book.reject(id, by, reason));
    },
    async automatic(change, reason) {
      if (change.kind === 'mode' && policy.pinned) return undefined;
      const a = book.executedBy(change, reason, SYSTEM_ACTOR);
      return execute(a, `${describe(a)} executed by ${SYSTEM_ACTOR}: ${reason}`);
    },
    sweep,
    applyShared: apply,
    async restore() {
      const stored = await store.load();
      if (stored.mode !== undefined) policy.apply({ kind: 'mode', ...stored.mode });
      for (const block of stored.blocks) policy.apply({ kind: 'block', block });
      for (const a of stored.actions) book.record(a);
      // Shared state in Redis is newer than what this agent stored: it wins.
      for (const change of (await share?.load()) ?? []) apply(change, 'redis');
      logger.info({ mode: MODE_NAMES[policy.mode], blocks: policy.blocks().length, actions: book.all().length }, 'security state restored');
      await sweep();
    },
  };
}
