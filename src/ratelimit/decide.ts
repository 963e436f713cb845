import { AgentError } from '../errors/agent-error.js';
import type { BucketSpec } from './bucket.js';
import { UNIT_SECONDS, type DescriptorNode, type Limit, type Unit } from './limits.js';
import { shownEntries } from './keys.js';
import type { RateLimitInput, RequestDescriptor } from './wire-request.js';

/**
 * The pure steps of one check, as envoyproxy/ratelimit takes them: validate the request, match
 * each descriptor to its limit and size its bucket (answer.ts turns bucket decisions into statuses
 * and headers). The check (check.ts) only adds the buckets, the security layer and the metrics.
 */

/** Descriptors and entries one request may carry. */
const MAX_DESCRIPTORS = 64;
const MAX_ENTRIES = 32;
export const MAX_UINT32 = 4_294_967_295;
const OVERRIDE_UNIT: Record<number, Unit | undefined> = { 1: 'second', 2: 'minute', 3: 'hour', 4: 'day', 5: 'month', 6: 'year', 7: 'week' };

/**
 * Checks a request: INVALID_ARGUMENT naming the field for what Envoy's validation would refuse, and
 * for entry keys over `maxKeyLength` (keys come from Envoy's route configuration, not from clients:
 * a long one is a mistake or an attack). Long values are not refused: Envoy fails open on an error,
 * so a client could then pass any limit with one long header; they are digested in bucket keys.
 */
export function validate(req: RateLimitInput, maxKeyLength: number): void {
  if (req.domain === '') throw bad('domain', 'is required');
  const { descriptors } = req;
  if (descriptors.length === 0) throw bad('descriptors', 'at least one descriptor is required');
  if (descriptors.length > MAX_DESCRIPTORS) throw bad('descriptors', `at most ${MAX_DESCRIPTORS} descriptors per request, got ${descriptors.length}`);
  for (let i = 0; i < descriptors.length; i++) {
    const { entries } = descriptors[i] as RequestDescriptor;
    if (entries.length === 0) throw bad(`descriptors[${i}].entries`, 'at least one entry is required');
    if (entries.length > MAX_ENTRIES) throw bad(`descriptors[${i}].entries`, `at most ${MAX_ENTRIES} entries, got ${entries.length}`);
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j] as { key: string; value: string };
      if (e.key === '') throw bad(`descriptors[${i}].entries[${j}].key`, 'is required');
      if (e.key.length > maxKeyLength) throw bad(`descriptors[${i}].entries[${j}].key`, `${e.key.length} characters, over ratelimit.max_key_length (${maxKeyLength})`);
      if (e.value === '') throw bad(`descriptors[${i}].entries[${j}].value`, 'is required');
    }
  }
}

const bad = (field: string, message: string) => new AgentError('invalid_argument', `${field}: ${message}`);

/** The descriptor node a request descriptor matches, as envoyproxy/ratelimit matches them: key_value, then wildcard values, then key; depth must match. */
export function matchNode(root: DescriptorNode, descriptor: Pick<RequestDescriptor, 'entries'>): DescriptorNode | undefined {
  let node = root;
  const { entries } = descriptor;
  const last = entries.length - 1;
  for (let i = 0; i <= last; i++) {
    const { key, value } = entries[i] as { key: string; value: string };
    const next = node.children.get(`${key}_${value}`) ?? node.wildcards.get(key)?.find((w) => value.startsWith(w.prefix))?.node ?? node.children.get(key);
    if (!next) return undefined;
    if (i === last) return next;
    node = next;
  }
  return undefined;
}

/** The limit for one request descriptor: its matchNode's. */
export function matchLimit(root: DescriptorNode, descriptor: Pick<RequestDescriptor, 'entries'>): Limit | undefined {
  return matchNode(root, descriptor)?.limit;
}

/** A descriptor's limit: as configured, or as the request overrides it (then its path names the request's values). */
export interface MatchedLimit {
  limit: Limit;
  override: boolean;
}

/**
 * Every descriptor's limit (undefined: none applies), matched before any is checked because a
 * matched limit may replace others by name. A descriptor's own `limit` replaces the configured one
 * (or applies where none is configured), as in envoyproxy/ratelimit.
 */
export function matchDescriptors(root: DescriptorNode | undefined, req: RateLimitInput): Array<MatchedLimit | undefined> {
  const matched: Array<MatchedLimit | undefined> = [];
  let replacing = false;
  for (const d of req.descriptors) {
    const m = root && matchOne(root, req.domain, d);
    if (m && m.limit.replaces.length > 0) replacing = true;
    matched.push(m);
  }
  if (!replacing) return matched;
  const replaced = new Set(matched.flatMap((m) => m?.limit.replaces ?? []));
  return matched.map((m) => (m && m.limit.name !== undefined && replaced.has(m.limit.name) ? undefined : m));
}

/** Each configured limit's match (the same object every time: matches are never changed). */
const configuredMatches = new WeakMap<Limit, MatchedLimit>();

function matchOne(root: DescriptorNode, domain: string, d: RequestDescriptor): MatchedLimit | undefined {
  const unit = d.limit && d.limit.requestsPerUnit >= 0 ? OVERRIDE_UNIT[d.limit.unit] : undefined;
  const base = matchLimit(root, d);
  if (!d.limit || !unit) {
    if (!base) return undefined;
    let m = configuredMatches.get(base);
    if (!m) configuredMatches.set(base, (m = { limit: base, override: false }));
    return m;
  }
  const path = `${domain}.${shownEntries(d.entries).map((e) => `${e.key}_${e.value}`).join('.')}#override`;
  const limit: Limit = { ...(base ?? { name: undefined, unlimited: false, replaces: [], backend: 'local', shadowMode: false, detailedMetric: false }), unit, requestsPerUnit: d.limit.requestsPerUnit, capacity: d.limit.requestsPerUnit, path };
  return { limit, override: true };
}

/** The bucket of a limit; elevated security mode (`factor` < 1) makes it a separate, smaller one while it lasts. */
export function bucketSpec(limit: Limit, factor: number): BucketSpec {
  const capacity = factor === 1 || limit.capacity === 0 ? limit.capacity : Math.max(1, Math.floor(limit.capacity * factor));
  return { capacity, ratePerMs: (limit.requestsPerUnit * factor) / (UNIT_SECONDS[limit.unit] * 1000) };
}
