import { Counter, type Registry } from 'prom-client';
import type { RuleConfig } from '../../config/automation.js';
import type { Config } from '../../config/schema.js';
import { SecurityMode } from '../../gen/heimdall/v1/security_pb.js';
import type { Notify } from '../../notify/notification.js';
import type { Logger } from '../../telemetry/logger.js';
import type { SecurityChanges } from '../security-changes.js';
import { MODE_NAMES, SYSTEM_ACTOR, type SecurityPolicy } from '../security-policy.js';
import type { SecuritySignals } from '../signals.js';
import { createDecisions, type Decisions } from './decisions.js';
import { createRedisStore } from './redis-store.js';
import { fires, heldMode, isModeRule, RULE_MODE, signalsOf, windowOf, type ModeRule } from './rules.js';
import { createMemoryStore, MAX_MEMORY_KEYS, type AutomationStore, type WindowAdd, type WindowTotals } from './store.js';
import { createTickCollector, type TickSignals } from './tick.js';

/** A transition down is claimed for this long: longer than the change's trip to the other agents (through the security share). */
const LOWER_CLAIM_MS = 5_000;

/** Options for createAutomation. */
export interface AutomationOptions {
  /** `ratelimit.security.automation`: the rules, and the entries never blocked. */
  config: Config['ratelimit']['security']['automation'];
  /** `ratelimit.redis`; with it, counts, claims and holds are shared by every agent on the same Redis. */
  redis?: Config['ratelimit']['redis'] | undefined;
  policy: Pick<SecurityPolicy, 'mode' | 'pinned' | 'modeSetBy' | 'blocks'>;
  changes: Pick<SecurityChanges, 'automatic'>;
  /** Hands a notification to a rule's webhook (only the agent that executed the decision does); none: nobody is told. */
  notify?: Notify | undefined;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
  /** How often rules are evaluated; default 1000 ms. */
  intervalMs?: number | undefined;
  metrics: Registry;
  logger: Logger;
}

/** The rules engine: counts signals per rule and window, and changes the mode or blocks when a rule fires. */
export interface Automation {
  /** A tick of the rate-limit worker's signals (refusals, incidents). */
  signals(signals: SecuritySignals): void;
  /** Honeypot hits (`count`) from `entities` (`key=value`; at most 1,000 distinct kept per tick). */
  honeypotHits(count: number, entities: readonly string[]): void;
  /** Evaluates the rules now on what arrived since the last evaluation; never throws (the timer calls it). */
  evaluate(): Promise<void>;
  start(): void;
  /** Stops the timer, waits for a running evaluation, disconnects. Safe to call twice. */
  shutdown(): Promise<void>;
}

/** A window count to add, and what fires if its totals reach the rule's threshold. */
interface Target {
  rule: RuleConfig;
  window: number;
  /** Block rules: the incident's entity and entries. */
  entity?: string;
  entries?: ReadonlyArray<{ key: string; value: string }>;
}

/** The window counts of a tick's signals: one per mode rule with signals, one per block rule and incident entity. */
function targetsOf(rules: readonly RuleConfig[], tick: TickSignals, t: number): Array<{ add: WindowAdd; target: Target }> {
  const out: Array<{ add: WindowAdd; target: Target }> = [];
  for (const rule of rules) {
    const window = windowOf(t, rule.window);
    const ttlMs = rule.window * 2;
    if (isModeRule(rule)) {
      const s = signalsOf(rule, tick);
      if (s.count > 0) out.push({ add: { key: `n:${rule.name}:${window}`, count: s.count, entities: s.entities, ttlMs }, target: { rule, window } });
      continue;
    }
    for (const [entity, i] of tick.byEntity) out.push({ add: { key: `n:${rule.name}:${window}:${entity}`, count: i.count, entities: [], ttlMs }, target: { rule, window, entity, entries: i.entries } });
  }
  return out;
}

const describeFiring = (rule: RuleConfig, totals: WindowTotals, entity: string | undefined): string =>
  entity !== undefined ? `rule ${rule.name}: ${totals.count} incidents of ${entity} within ${rule.window / 1000}s` : `rule ${rule.name}: ${totals.count} ${rule.on.replace('_', ' ')} from ${totals.entities} entities within ${rule.window / 1000}s`;

/**
 * Creates the engine. Every `intervalMs` it adds what arrived to each rule's current window (windows
 * counted from the epoch; in Redis, so counts add up across agents), and a rule whose window reaches
 * its threshold fires once per window (per entity for block rules): a mode rule holds its mode for
 * `quiet`, and the one agent that claims the firing executes it. A mode set by the system is lowered
 * (by the one agent that claims the transition) once no rule holding it is held any more; a mode an
 * admin set is never lowered, and a pinned one never changed.
 */
export function createAutomation(options: AutomationOptions): Automation {
  const logger = options.logger.child({ component: 'automation' });
  const now = options.now ?? Date.now;
  const { rules } = options.config;
  const modeRules = rules.filter(isModeRule);
  const local = createMemoryStore(now);
  const store: AutomationStore = options.redis && rules.length > 0 ? createRedisStore({ redis: options.redis, fallback: local, logger, now }) : local;
  const decisions = createDecisions({ allow: options.config.allow, policy: options.policy, changes: options.changes, notify: options.notify, now });
  const firings = new Counter({ name: 'heimdall_security_rule_firings_total', help: 'Automation rule firings executed by this agent (one per rule and window across agents sharing Redis; block rules: per entity), by rule.', labelNames: ['rule'] as const, registers: [options.metrics] });
  const tick = createTickCollector();
  /** Firings this agent saw, by key, until their window is over (one per window on this agent; past the bound, the claim alone decides). */
  const seen = new Map<string, number>();

  const fire = async (target: Target, totals: WindowTotals, t: number): Promise<void> => {
    const { rule } = target;
    const key = `${rule.name}:${target.window}${target.entity !== undefined ? `:${target.entity}` : ''}`;
    // Held again at every evaluation over the threshold (not only the first of the window), so the
    // quiet period counts from the last one.
    if (isModeRule(rule)) await store.hold(`h:${rule.name}`, rule.quiet);
    if (seen.has(key)) return;
    if (seen.size < MAX_MEMORY_KEYS) seen.set(key, t + 2 * rule.window);
    if (!(await store.claim(`c:${key}`, 2 * rule.window))) return;
    firings.inc({ rule: rule.name });
    const reason = describeFiring(rule, totals, target.entity);
    logger.info({ rule: rule.name, count: totals.count, entities: totals.entities, entity: target.entity }, 'automation rule fired');
    if (isModeRule(rule)) await decisions.raise(rule, reason);
    else await decisions.block(rule, target.entries ?? [], reason);
  };
  const evaluate = async (): Promise<void> => {
    const t = now();
    for (const [k, until] of seen) if (until <= t) seen.delete(k);
    const targets = targetsOf(rules, tick.take(), t);
    const totals = targets.length > 0 ? await store.add(targets.map((x) => x.add)) : [];
    for (let i = 0; i < targets.length; i++) {
      const x = targets[i];
      const sum = totals[i];
      // One target's failure (storage down) leaves the others, and the way down, to run.
      if (x && sum && fires(x.target.rule, sum)) await fire(x.target, sum, t).catch((err: unknown) => logger.error({ err, rule: x.target.rule.name }, 'automation rule fired but its action failed'));
    }
    await lowerWhenQuiet(options.policy, modeRules, store, decisions);
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const run = (): Promise<void> =>
    (running ??= evaluate()
      .catch((err: unknown) => logger.error({ err }, 'automation rules not evaluated'))
      .finally(() => (running = undefined)));
  return {
    signals: (s) => tick.signals(s),
    honeypotHits: (count, entities) => tick.honeypotHits(count, entities),
    evaluate: run,
    start() {
      if (rules.length === 0 || timer) return;
      timer = setInterval(() => void run(), options.intervalMs ?? 1_000);
      timer.unref();
    },
    async shutdown() {
      clearInterval(timer);
      await running;
      store.shutdown();
    },
  };
}

/** Lowers a mode the system set, once no rule holding it is held any more (to the highest still held, else normal), by the agent that claims the transition. */
async function lowerWhenQuiet(policy: Pick<SecurityPolicy, 'mode' | 'pinned' | 'modeSetBy'>, modeRules: readonly ModeRule[], store: AutomationStore, decisions: Decisions): Promise<void> {
  const from = policy.mode;
  if (policy.pinned || policy.modeSetBy !== SYSTEM_ACTOR || from === SecurityMode.NORMAL) return;
  const to = heldMode(modeRules, await store.held(modeRules.map((r) => `h:${r.name}`)));
  if (to >= from || policy.mode !== from) return;
  if (!(await store.claim(`c:lower:${MODE_NAMES[from]}:${MODE_NAMES[to]}`, LOWER_CLAIM_MS))) return;
  const left = modeRules.filter((r) => RULE_MODE[r.then] === from);
  await decisions.lower(to, left, `no rule holding ${MODE_NAMES[from]} fired for its quiet period`);
}
