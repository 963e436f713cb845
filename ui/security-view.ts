/** SecurityService answers as the security view shows them. DOM-free (unit-tested under Node). */
import type { Action } from './api/security-types.js';
import { formatDuration } from './time.js';

/** The modes an admin may request, mildest first. */
export const MODES = ['normal', 'elevated', 'lockdown'] as const;

/** `SECURITY_MODE_LOCKDOWN` as `lockdown` (`unspecified` when absent). */
export function modeName(mode: string | undefined): string {
  return (mode ?? '').replace(/^SECURITY_MODE_/, '').toLowerCase() || 'unspecified';
}

/** `ACTION_STATE_PENDING` as `pending`. */
export function actionState(a: Action): string {
  return (a.state ?? '').replace(/^ACTION_STATE_/, '').toLowerCase() || 'unspecified';
}

/** What an action changes: `set mode lockdown`, `block k=v for 1h`, `block k=v until unblocked`, `unblock k=v`. */
export function describeChange(a: Action): string {
  if (a.setMode) return `set mode ${modeName(a.setMode.mode)}${a.setMode.pin ? ' (pinned)' : ''}`;
  if (a.unblock) return `unblock ${a.unblock.entity ?? ''}`;
  if (a.block) {
    const d = a.block.durationSeconds ?? 0;
    return `block ${a.block.entity ?? ''} ${d > 0 ? `for ${formatDuration(d)}` : 'until unblocked'}`;
  }
  return 'unknown change';
}

/** Pending actions first (oldest first: the next to decide on top), then the others newest first. */
export function sortActions(actions: Action[]): Action[] {
  const time = (a: Action) => Date.parse(a.createdAt ?? '') || 0;
  const pending = actions.filter((a) => actionState(a) === 'pending').sort((x, y) => time(x) - time(y));
  const rest = actions.filter((a) => actionState(a) !== 'pending').sort((x, y) => time(y) - time(x));
  return [...pending, ...rest];
}

