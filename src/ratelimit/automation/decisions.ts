import type { AutomationConfig, RuleConfig } from '../../config/automation.js';
import type { SecurityMode } from '../../gen/heimdall/v1/security_pb.js';
import { blockNotification, type Notify, type SecurityNotification } from '../../notify/notification.js';
import type { ActionRecord } from '../security-actions.js';
import type { SecurityChanges } from '../security-changes.js';
import { MODE_NAMES, type SecurityPolicy } from '../security-policy.js';
import { blockTargets, RULE_MODE, type ModeRule } from './rules.js';

/** Options for createDecisions. */
export interface DecisionsOptions {
  /** `automation.allow`: entries never blocked. */
  allow: AutomationConfig['allow'];
  policy: Pick<SecurityPolicy, 'mode' | 'pinned' | 'blocks'>;
  changes: Pick<SecurityChanges, 'automatic'>;
  /** Hands a notification to a rule's webhook; none: rules notify nobody. */
  notify?: Notify | undefined;
  now: () => number;
}

/**
 * What a claimed decision does, executed by this agent alone: raise the mode, block an incident's
 * entities, lower the mode. Each is an automatic action (SYSTEM_ACTOR, audited), and each rule with
 * a webhook is told about what was executed. Errors of the changes (a failed storage write) are thrown.
 */
export interface Decisions {
  /** Switches to the rule's mode unless the mode is pinned or already as high. */
  raise(rule: ModeRule, reason: string): Promise<void>;
  /** Blocks the incident's entries the rule names (minus allow, values too long, and those blocked already) for its block_ttl. */
  block(rule: RuleConfig, entries: ReadonlyArray<{ key: string; value: string }>, reason: string): Promise<void>;
  /** Switches down to `mode`, telling the webhooks of `rules` (those that held the mode left). */
  lower(mode: SecurityMode, rules: readonly RuleConfig[], reason: string): Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Creates the decisions over the policy and the changes. */
export function createDecisions(options: DecisionsOptions): Decisions {
  const { policy, changes } = options;
  const tell = (rule: RuleConfig, a: ActionRecord, fields: Omit<SecurityNotification, 'rule' | 'reason' | 'action_id' | 'time'>): void => {
    if (rule.webhook && options.notify) options.notify(rule.webhook, { ...fields, rule: rule.name, reason: a.reason, action_id: a.id, time: iso(a.decidedAt) });
  };
  const setMode = async (mode: SecurityMode, rules: readonly RuleConfig[], reason: string): Promise<void> => {
    const before = policy.mode;
    const a = await changes.automatic({ kind: 'mode', mode }, reason);
    if (!a) return;
    const text = `Heimdall security mode ${MODE_NAMES[mode]} (was ${MODE_NAMES[before]}): ${reason}`;
    for (const rule of rules) tell(rule, a, { kind: 'mode', text, mode: MODE_NAMES[mode], previous_mode: MODE_NAMES[before] });
  };
  return {
    async raise(rule, reason) {
      const mode = RULE_MODE[rule.then];
      if (policy.pinned || policy.mode >= mode) return;
      await setMode(mode, [rule], reason);
    },
    async block(rule, entries, reason) {
      const t = options.now();
      const blocked = new Set(policy.blocks().filter((b) => b.expiresAt === 0 || b.expiresAt > t).map((b) => b.entity));
      const durationSeconds = Math.ceil(rule.block_ttl / 1000);
      for (const target of blockTargets(rule, entries, options.allow, blocked)) {
        const a = await changes.automatic({ kind: 'block', entity: target, reason: `rule ${rule.name}`, durationSeconds }, reason);
        if (!a) continue;
        if (rule.webhook) options.notify?.(rule.webhook, blockNotification(rule.name, a, target, durationSeconds, reason));
      }
    },
    lower: (mode, rules, reason) => setMode(mode, rules, reason),
  };
}
