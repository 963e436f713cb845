import { AgentError } from '../errors/agent-error.js';
import { ActionState, type SecurityMode } from '../gen/heimdall/v1/security_pb.js';
import { uuidv7 } from '../ids/uuidv7.js';

/** The change an action makes once approved. */
export type ActionChange = { kind: 'block'; entity: string; reason: string; durationSeconds: number } | { kind: 'unblock'; entity: string } | { kind: 'mode'; mode: SecurityMode; pin?: boolean | undefined };

/** An action as stored (times in ms since the epoch; 0: not yet). */
export interface ActionRecord {
  id: string;
  change: ActionChange;
  state: ActionState;
  reason: string;
  requestedBy: string;
  decidedBy: string;
  createdAt: number;
  decidedAt: number;
  expiresAt: number;
}

/** Each action state's name, as metrics labels and event types spell it. */
export const STATE_NAMES: Record<ActionState, string> = {
  [ActionState.UNSPECIFIED]: 'unspecified',
  [ActionState.PENDING]: 'pending',
  [ActionState.EXECUTED]: 'executed',
  [ActionState.REJECTED]: 'rejected',
  [ActionState.EXPIRED]: 'expired',
};

/** Who decides an action that nobody decided on in time. */
export const EXPIRER = 'heimdall';

/** Options for createActionBook. */
export interface ActionBookOptions {
  /** A pending action expires this long after it is requested (`ratelimit.security.approval_ttl`). */
  ttlMs: number;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
  /** Decided actions kept (the oldest go first; they stay in storage and the audit events); default 1000. */
  maxDecided?: number | undefined;
}

/**
 * The actions and their state machine: pending, then executed (approved by an admin other than the
 * requester), rejected or expired. Transitions return the next record without keeping it; `record`
 * keeps it once the caller has stored it, so a failed write changes nothing. No I/O; never throws
 * except the AgentErrors of a refused transition.
 */
export interface ActionBook {
  /** A new pending action requested by `by`, expiring ttlMs from now. */
  propose(change: ActionChange, reason: string, by: string): ActionRecord;
  /** A new action requested and executed at once by `by` (automation: no approval). */
  executedBy(change: ActionChange, reason: string, by: string): ActionRecord;
  /** Pending action `id` approved by `by`: executed. not_found, failed_precondition (not pending), permission_denied (`by` requested it). */
  approve(id: string, by: string): ActionRecord;
  /** Pending action `id` rejected by `by`, with `reason` when one is given. not_found, failed_precondition (not pending). */
  reject(id: string, by: string, reason: string): ActionRecord;
  /** Every pending action past its expiry, expired (decided by `heimdall`). */
  expired(): ActionRecord[];
  /** Keeps `action` as its newest state. */
  record(action: ActionRecord): void;
  /** Actions in `state` (UNSPECIFIED: all), newest first. */
  list(state?: ActionState): ActionRecord[];
  /** Actions kept, in the order first kept. */
  all(): ActionRecord[];
}

/** Creates an empty action book. */
export function createActionBook(options: ActionBookOptions): ActionBook {
  const now = options.now ?? Date.now;
  const maxDecided = options.maxDecided ?? 1_000;
  const actions = new Map<string, ActionRecord>();
  const decided = (a: ActionRecord, state: ActionState, by: string): ActionRecord => ({ ...a, state, decidedBy: by, decidedAt: now() });
  const pending = (id: string): ActionRecord => {
    const a = actions.get(id);
    if (!a) throw new AgentError('not_found', `id: no action ${JSON.stringify(id)}`);
    if (a.state !== ActionState.PENDING) throw new AgentError('failed_precondition', `action ${id} is ${STATE_NAMES[a.state]}, not pending`);
    return a;
  };
  return {
    propose(change, reason, by) {
      const t = now();
      return { id: uuidv7(t), change, state: ActionState.PENDING, reason, requestedBy: by, decidedBy: '', createdAt: t, decidedAt: 0, expiresAt: t + options.ttlMs };
    },
    executedBy(change, reason, by) {
      const t = now();
      return { id: uuidv7(t), change, state: ActionState.EXECUTED, reason, requestedBy: by, decidedBy: by, createdAt: t, decidedAt: t, expiresAt: 0 };
    },
    approve(id, by) {
      const a = pending(id);
      if (by === a.requestedBy) throw new AgentError('permission_denied', `action ${a.id} must be approved by an admin other than the one who requested it (${by})`);
      return decided(a, ActionState.EXECUTED, by);
    },
    reject(id, by, reason) {
      const a = pending(id);
      return decided({ ...a, reason: reason || a.reason }, ActionState.REJECTED, by);
    },
    expired() {
      const t = now();
      return [...actions.values()].filter((a) => a.state === ActionState.PENDING && a.expiresAt <= t).map((a) => decided(a, ActionState.EXPIRED, EXPIRER));
    },
    record(action) {
      actions.set(action.id, action);
      if (action.state === ActionState.PENDING) return;
      const decidedIds = [...actions.values()].filter((x) => x.state !== ActionState.PENDING).map((x) => x.id);
      for (const id of decidedIds.slice(0, Math.max(0, decidedIds.length - maxDecided))) actions.delete(id);
    },
    list(state = ActionState.UNSPECIFIED) {
      return [...actions.values()].filter((a) => state === ActionState.UNSPECIFIED || a.state === state).sort((x, y) => y.createdAt - x.createdAt);
    },
    all: () => [...actions.values()],
  };
}
