import type { RuleConfig } from '../../config/automation.js';
import { autoBlockable } from '../../config/entry-patterns.js';
import { SecurityMode } from '../../gen/heimdall/v1/security_pb.js';
import type { WindowTotals } from './store.js';
import type { SignalCount, TickSignals } from './tick.js';

/**
 * The pure steps of the rules engine: which window a time is in, which signals a rule counts,
 * whether a window's totals fire it, the mode the held rules keep, and what a block rule blocks.
 */

/** A rule that changes the mode. */
export type ModeRule = RuleConfig & { then: 'elevated' | 'lockdown' };

/** The mode a mode rule switches to. */
export const RULE_MODE = { elevated: SecurityMode.ELEVATED, lockdown: SecurityMode.LOCKDOWN } as const;

/** A value `shown` shortened (its start, `…#` and a digest): it names no request's value, so it is never blocked. */
const SHORTENED = /\u2026#[A-Za-z0-9_-]{22}$/; // \u2026 (…): a bundle with one character past Latin-1 is held as two bytes a character

export const isModeRule = (r: RuleConfig): r is ModeRule => r.then !== 'block';

/** The window `t` falls in: windows are counted from the epoch, so every agent numbers them alike. */
export const windowOf = (t: number, windowMs: number): number => Math.floor(t / windowMs);

/** The signals of a tick a mode rule counts. */
export function signalsOf(rule: ModeRule, tick: TickSignals): SignalCount {
  return rule.on === 'refusals' ? tick.refusals : rule.on === 'incidents' ? tick.incidents : tick.honeypotHits;
}

/** Whether a window's totals fire the rule: `threshold` signals, and for mode rules from `min_entities` distinct entities. */
export function fires(rule: RuleConfig, totals: WindowTotals): boolean {
  return totals.count >= rule.threshold && (rule.then === 'block' || totals.entities >= rule.min_entities);
}

/** The mode the rules still held keep (`held[i]` for `rules[i]`): the highest, else normal. */
export function heldMode(rules: readonly ModeRule[], held: readonly boolean[]): SecurityMode {
  let mode: SecurityMode = SecurityMode.NORMAL;
  rules.forEach((r, i) => {
    if (held[i] && RULE_MODE[r.then] > mode) mode = RULE_MODE[r.then];
  });
  return mode;
}

/**
 * The entities (`key=value`) a block rule blocks for an incident's entries: those whose key is in
 * `block_keys`, that no `allow` pattern matches, whose value is at most 1,024 characters and not
 * shortened, and that are not blocked already (`blocked`). Each once, in the entries' order.
 */
export function blockTargets(rule: Pick<RuleConfig, 'block_keys'>, entries: ReadonlyArray<{ key: string; value: string }>, allow: readonly string[], blocked: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const { key, value } of entries) {
    const entity = `${key}=${value}`;
    if (!autoBlockable(rule.block_keys, allow, key, value) || SHORTENED.test(value) || blocked.has(entity) || out.includes(entity)) continue;
    out.push(entity);
  }
  return out;
}
