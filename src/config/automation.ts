import { z } from './zod.js';
import { duration, integer } from './units.js';

/** Longest time an automatic block or a quiet period may be set to: 30 days. */
const MAX_AUTO_MS = 30 * 86_400_000;

/** A descriptor entry pattern: `key=value`, the value ending in `*` to match every value it starts. */
export const entryPattern = z.string().regex(/^[^=\s]+=\S+$/, 'expected key=value (a value ending in * matches every value it starts)');

const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected 1 to 64 letters, digits, "_", "." or "-"');

/** Entry keys of a request whose entries an automatic block blocks (e.g. remote_address). */
const blockKeys = z.array(z.string().min(1).max(256)).min(1).max(16).default(['remote_address']);

/**
 * Where a rule's notifications go: a POST of a JSON body (with a `text` line that chat tools show).
 * Secrets come from the environment through `${env:NAME}` in `url` or `headers` (both masked by check-config).
 */
export const webhookSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as "https://hooks.example.com/heimdall"' }),
  /** Extra request headers, e.g. `authorization: "Bearer ${env:OPS_TOKEN}"`. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name'), z.string()).default({}),
  /** Longest wait for one attempt. */
  timeout: duration({ min: 100, max: 60_000 }).prefault('5s'),
  /** Attempts after the first, on a network error, a timeout, 408, 429 or 5xx. */
  retries: integer({ min: 0, max: 20 }).default(5),
  /** Wait before the first retry; doubled before each next one (at most 5 minutes), with jitter. */
  backoff: duration({ min: 10, max: 300_000 }).prefault('1s'),
});

/** A trap: a descriptor no real client sends. Any hit blocks the request's entities under `block_keys`. */
const honeypot = z.strictObject({
  /** Names the trap in events, metrics and limits files (`honeypot: <name>` on a descriptor). */
  name,
  /** Entries that, all in one request descriptor, make a hit; none: the trap is placed by limits files only. */
  entries: z.array(entryPattern).max(16).default([]),
  block_keys: blockKeys,
  /** How long the block lasts. */
  block_ttl: duration({ min: 1000, max: MAX_AUTO_MS }).prefault('1h'),
  webhook: webhookSchema.optional(),
});

/** A rule: when a signal passes a threshold within a window, change the mode or block. */
const rule = z.strictObject({
  name,
  /** refusals: descriptors over their limit (not those refused by a block, lockdown or a trap); incidents: an entity over incident_threshold in one over-limit window; honeypot_hits: trap hits. */
  on: z.enum(['refusals', 'incidents', 'honeypot_hits']),
  /** Signals within one window that fire the rule (for `then: block`: incidents of one entity). */
  threshold: integer({ min: 1, max: 1_000_000_000 }),
  /** Distinct entities the signals must come from (mode rules). */
  min_entities: integer({ min: 1, max: 10_000 }).default(1),
  /** Windows are counted from the epoch, the same on every agent. */
  window: duration({ min: 1000, max: 86_400_000 }).prefault('1m'),
  /** elevated or lockdown: the mode to switch to; block: block the incident's entities (with `on: incidents`). */
  then: z.enum(['elevated', 'lockdown', 'block']),
  /** Mode rules: back to normal once the rule has not fired for this long. */
  quiet: duration({ min: 1000, max: MAX_AUTO_MS }).prefault('10m'),
  block_keys: blockKeys,
  /** Block rules: how long the block lasts. */
  block_ttl: duration({ min: 1000, max: MAX_AUTO_MS }).prefault('15m'),
  webhook: webhookSchema.optional(),
});

/** `ratelimit.security.automation`: honeypots, rules and the entries they never block. */
export const automationSchema = z
  .strictObject({
    /** Entries never blocked automatically (health checkers, known scanners): `key=value`, a value ending in `*` a prefix. */
    allow: z.array(entryPattern).max(1_000).default([]),
    honeypots: z.array(honeypot).max(100).default([]),
    rules: z.array(rule).max(100).default([]),
  })
  .superRefine((a, ctx) => {
    a.rules.forEach((r, i) => {
      if (r.then === 'block' && r.on !== 'incidents') ctx.addIssue({ code: 'custom', path: ['rules', i, 'then'], message: `block needs on: incidents (the entity blocked is the incident's), got on: ${r.on}` });
      // A quiet period shorter than a window would lower the mode while the next window still counts up to the threshold: flapping.
      if (r.then !== 'block' && r.quiet < r.window) ctx.addIssue({ code: 'custom', path: ['rules', i, 'quiet'], message: `must be at least the rule's window (${r.window} ms), else the mode flaps between windows` });
    });
    for (const [what, list] of [['honeypots', a.honeypots], ['rules', a.rules]] as const) {
      const seen = new Set<string>();
      list.forEach((x, i) => {
        if (seen.has(x.name)) ctx.addIssue({ code: 'custom', path: [what, i, 'name'], message: `duplicate name ${JSON.stringify(x.name)}` });
        seen.add(x.name);
      });
    }
  });

export type AutomationConfig = z.output<typeof automationSchema>;
export type WebhookConfig = z.output<typeof webhookSchema>;
export type HoneypotConfig = AutomationConfig['honeypots'][number];
export type RuleConfig = AutomationConfig['rules'][number];
