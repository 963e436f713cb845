import { formatMs, parseDuration } from '../config/units.js';
import { ActionState, type Action, type Block, type SecurityMode } from '../gen/heimdall/v1/security_pb.js';
import { STATE_NAMES } from '../ratelimit/security-actions.js';
import { MODE_NAMES, MODES } from '../ratelimit/security-policy.js';
import { cut, iso } from './common.js';

/** Longest `--ttl` of a block: what the API's uint32 of seconds holds (about 136 years). */
export const MAX_TTL_SECONDS = 2 ** 32 - 1;

/** Characters of a reason a table shows (`--json` shows it whole). */
export const REASON_CHARS = 60;

/** A mode's name (normal, elevated, lockdown) as a SecurityMode; throws naming the accepted names. */
export function modeOf(name: string): SecurityMode {
  const mode = MODES.find((m) => MODE_NAMES[m] === name);
  if (mode === undefined) throw new Error(`mode: expected one of ${MODES.map((m) => MODE_NAMES[m]).join(', ')}, got ${JSON.stringify(name)}`);
  return mode;
}

/** A `--status` name (pending, executed, rejected, expired) as an ActionState; throws naming the accepted names. */
export function stateOf(name: string): ActionState {
  const states = [ActionState.PENDING, ActionState.EXECUTED, ActionState.REJECTED, ActionState.EXPIRED];
  const state = states.find((s) => STATE_NAMES[s] === name);
  if (state === undefined) throw new Error(`--status: expected one of ${states.map((s) => STATE_NAMES[s]).join(', ')}, got ${JSON.stringify(name)}`);
  return state;
}

/** A `--ttl` duration as whole seconds (rounded up), from 1 s to MAX_TTL_SECONDS; throws naming the option. */
export function ttlSeconds(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms < 1000 || Math.ceil(ms / 1000) > MAX_TTL_SECONDS) throw new Error(`--ttl: expected a duration from 1s to ${MAX_TTL_SECONDS}s such as 30m, 24h or 7d, got ${JSON.stringify(text)}`);
  return Math.ceil(ms / 1000);
}

/** What an action changes, in words: `set mode lockdown`, `block k=v for 1h` (or `until unblocked`), `unblock k=v`. */
export function describeChange(a: Pick<Action, 'change'>): string {
  const c = a.change;
  if (c.case === 'setMode') return `set mode ${MODE_NAMES[c.value.mode]}`;
  if (c.case === 'block') return `block ${c.value.entity} ${c.value.durationSeconds > 0 ? `for ${formatMs(c.value.durationSeconds * 1000)}` : 'until unblocked'}`;
  if (c.case === 'unblock') return `unblock ${c.value.entity}`;
  return '(no change)';
}

/** The header of an actions table. */
export const ACTION_HEADER = ['ID', 'STATE', 'CHANGE', 'REQUESTED BY', 'DECIDED BY', 'CREATED', 'DECIDED OR EXPIRES', 'REASON'];

/** Actions as rows under ACTION_HEADER: a pending action shows when it expires, a decided one when it was decided. */
export function actionRows(actions: Action[]): string[][] {
  return actions.map((a) => [
    a.id,
    STATE_NAMES[a.state],
    describeChange(a),
    a.requestedBy,
    a.decidedBy || '-',
    iso(a.createdAt),
    a.state === ActionState.PENDING ? `expires ${iso(a.expiresAt)}` : iso(a.decidedAt),
    cut(a.reason, REASON_CHARS),
  ]);
}

/** The header of a blocks table. */
export const BLOCK_HEADER = ['BLOCKED ENTITY', 'EXPIRES', 'REQUESTED BY', 'APPROVED BY', 'CREATED', 'REASON'];

/** Blocks as rows under BLOCK_HEADER (`never` for a block held until unblocked). */
export function blockRows(blocks: Block[]): string[][] {
  return blocks.map((b) => [b.entity, b.expiresAt ? iso(b.expiresAt) : 'never', b.requestedBy, b.approvedBy, iso(b.createdAt), cut(b.reason, REASON_CHARS)]);
}

/**
 * What a decision or request did, as lines for a person: a pending action names its id and the
 * command a second admin runs to approve it; a decided one who decided it.
 */
export function actionOutcome(a: Action): string[] {
  const change = describeChange(a);
  if (a.state === ActionState.PENDING) {
    return [
      `action ${a.id} is pending approval: ${change} (requested by ${a.requestedBy}; expires ${iso(a.expiresAt)})`,
      `A second admin (not ${a.requestedBy}) must approve it: heimdall security approve ${a.id}`,
    ];
  }
  const decision = a.state === ActionState.EXECUTED ? `approved by ${a.decidedBy}` : a.state === ActionState.REJECTED ? `rejected by ${a.decidedBy}` : 'nobody decided in time';
  return [`action ${a.id} ${STATE_NAMES[a.state]}: ${change} (requested by ${a.requestedBy}, ${decision})${a.reason ? `: ${a.reason}` : ''}`];
}
