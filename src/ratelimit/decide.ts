import type { RateLimitDescriptor } from '../gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { RateLimitResponse_Code, type RateLimitRequest } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import { AgentError } from '../errors/agent-error.js';
import type { BucketSpec, Decision } from './bucket.js';
import { UNIT_SECONDS, type DescriptorNode, type Limit, type Unit } from './config.js';
import { shownEntries } from './keys.js';
import type { WireResponse, WireStatus } from './wire.js';

/**
 * The pure steps of one check, as envoyproxy/ratelimit takes them: validate the request, match
 * each descriptor to its limit, size its bucket, and turn bucket decisions into statuses and
 * headers. The check (check.ts) only adds the buckets, the security layer and the metrics.
 */

/** Descriptors and entries one request may carry. */
const MAX_DESCRIPTORS = 64;
const MAX_ENTRIES = 32;
export const MAX_UINT32 = 4_294_967_295;
const UNIT_CODE: Record<Unit, number> = { second: 1, minute: 2, hour: 3, day: 4, month: 5, year: 6, week: 7 };
const OVERRIDE_UNIT: Record<number, Unit | undefined> = { 1: 'second', 2: 'minute', 3: 'hour', 4: 'day', 5: 'month', 6: 'year', 7: 'week' };

/**
 * Checks a request: INVALID_ARGUMENT naming the field for what Envoy's validation would refuse, and
 * for entry keys over `maxKeyLength` (keys come from Envoy's route configuration, not from clients:
 * a long one is a mistake or an attack). Long values are not refused: Envoy fails open on an error,
 * so a client could then pass any limit with one long header; they are digested in bucket keys.
 */
export function validate(req: RateLimitRequest, maxKeyLength: number): void {
  const bad = (field: string, message: string) => new AgentError('invalid_argument', `${field}: ${message}`);
  if (req.domain === '') throw bad('domain', 'is required');
  if (req.descriptors.length === 0) throw bad('descriptors', 'at least one descriptor is required');
  if (req.descriptors.length > MAX_DESCRIPTORS) throw bad('descriptors', `at most ${MAX_DESCRIPTORS} descriptors per request, got ${req.descriptors.length}`);
  req.descriptors.forEach((d, i) => {
    if (d.entries.length === 0) throw bad(`descriptors[${i}].entries`, 'at least one entry is required');
    if (d.entries.length > MAX_ENTRIES) throw bad(`descriptors[${i}].entries`, `at most ${MAX_ENTRIES} entries, got ${d.entries.length}`);
    d.entries.forEach((e, j) => {
      if (e.key === '') throw bad(`descriptors[${i}].entries[${j}].key`, 'is required');
      if (e.key.length > maxKeyLength) throw bad(`descriptors[${i}].entries[${j}].key`, `${e.key.length} characters, over ratelimit.max_key_length (${maxKeyLength})`);
      if (e.value === '') throw bad(`descriptors[${i}].entries[${j}].value`, 'is required');
    });
  });
}

/** The limit for one request descriptor, matched as envoyproxy/ratelimit does: key_value, then wildcard values, then key; depth must match. */
export function matchLimit(root: DescriptorNode, descriptor: RateLimitDescriptor): Limit | undefined {
  let node = root;
  const last = descriptor.entries.length - 1;
  for (const [i, { key, value }] of descriptor.entries.entries()) {
    const next = node.children.get(`${key}_${value}`) ?? node.wildcards.get(key)?.find((w) => value.startsWith(w.prefix))?.node ?? node.children.get(key);
    if (!next) return undefined;
    if (i === last) return next.limit;
    node = next;
  }
  return undefined;
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
export function matchDescriptors(root: DescriptorNode | undefined, req: RateLimitRequest): Array<MatchedLimit | undefined> {
  const matched = req.descriptors.map((d): MatchedLimit | undefined => {
    if (!root) return undefined;
    const unit = d.limit && d.limit.requestsPerUnit >= 0 ? OVERRIDE_UNIT[d.limit.unit] : undefined;
    const base = matchLimit(root, d);
    if (!d.limit || !unit) return base && { limit: base, override: false };
    const path = `${req.domain}.${shownEntries(d.entries).map((e) => `${e.key}_${e.value}`).join('.')}#override`;
    const limit: Limit = { ...(base ?? { name: undefined, unlimited: false, replaces: [], backend: 'local', shadowMode: false, detailedMetric: false }), unit, requestsPerUnit: d.limit.requestsPerUnit, capacity: d.limit.requestsPerUnit, path };
    return { limit, override: true };
  });
  const replaced = new Set(matched.flatMap((m) => m?.limit.replaces ?? []));
  return matched.map((m) => (m && m.limit.name !== undefined && replaced.has(m.limit.name) ? undefined : m));
}

/** The bucket of a limit; elevated security mode (`factor` < 1) makes it a separate, smaller one while it lasts. */
export function bucketSpec(limit: Limit, factor: number): BucketSpec {
  const capacity = factor === 1 || limit.capacity === 0 ? limit.capacity : Math.max(1, Math.floor(limit.capacity * factor));
  return { capacity, ratePerMs: (limit.requestsPerUnit * factor) / (UNIT_SECONDS[limit.unit] * 1000) };
}

/** One matched policy, as the RateLimit headers name it. */
export interface Policy {
  name: string;
  quota: number;
  window: number;
  remaining: number;
  reset: number;
}

/**
 * What one descriptor answers after its bucket decided, and the policy it reports. OK: the tokens
 * left and the time until the bucket is full (envoyproxy/ratelimit's window reset). OVER_LIMIT: 0
 * remaining, as envoyproxy/ratelimit answers, and the time until this request could pass, in whole
 * seconds (at least 1) in both the status and the headers; a request that never can (more than the
 * capacity, or a bucket that never refills) gets the policy's window.
 */
export function limitStatus(limit: Limit, spec: BucketSpec, decision: Decision): { status: WireStatus; policy: Policy; over: boolean } {
  const over = !decision.allowed && !limit.shadowMode;
  // A bucket that never refills (0 per unit) reports a whole unit until reset.
  const window = spec.ratePerMs > 0 ? Math.ceil(spec.capacity / spec.ratePerMs / 1000) : UNIT_SECONDS[limit.unit];
  const resetMs = Number.isFinite(decision.resetMs) ? decision.resetMs : UNIT_SECONDS[limit.unit] * 1000;
  const retrySeconds = Number.isFinite(decision.retryMs) ? Math.max(1, Math.ceil(decision.retryMs / 1000)) : Math.max(1, window);
  const remaining = over ? 0 : decision.remaining;
  return {
    over,
    policy: {
      name: limit.name ?? limit.path,
      quota: spec.capacity,
      window,
      remaining,
      reset: over ? retrySeconds : Math.ceil(resetMs / 1000),
    },
    status: {
      code: over ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK,
      currentLimit: { ...(limit.name ? { name: limit.name } : {}), requestsPerUnit: limit.requestsPerUnit, unit: UNIT_CODE[limit.unit] },
      limitRemaining: Math.min(remaining, MAX_UINT32),
      durationUntilReset: over ? { seconds: BigInt(retrySeconds), nanos: 0 } : { seconds: BigInt(Math.floor(resetMs / 1000)), nanos: Math.floor(resetMs % 1000) * 1_000_000 },
    },
  };
}

/** A structured-field string for a policy name (quotes and backslashes escaped). */
const sfString = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/**
 * Headers for every matched policy (draft-ietf-httpapi-ratelimit-headers), and with `legacy` the
 * draft-03 X-RateLimit-* for the policy closest to its limit.
 */
export function rateLimitHeaders(policies: readonly Policy[], legacy: boolean): WireResponse['responseHeadersToAdd'] {
  if (policies.length === 0) return [];
  const headers = [
    { key: 'RateLimit-Policy', value: policies.map((p) => `${sfString(p.name)};q=${p.quota};w=${p.window}`).join(', ') },
    { key: 'RateLimit', value: policies.map((p) => `${sfString(p.name)};r=${p.remaining};t=${p.reset}`).join(', ') },
  ];
  if (legacy) {
    const closest = policies.reduce((a, b) => (b.remaining < a.remaining ? b : a));
    headers.push({ key: 'X-RateLimit-Limit', value: [String(closest.quota), ...policies.map((p) => `${p.quota};w=${p.window};name=${sfString(p.name)}`)].join(', ') });
    headers.push({ key: 'X-RateLimit-Remaining', value: String(closest.remaining) });
    headers.push({ key: 'X-RateLimit-Reset', value: String(closest.reset) });
  }
  return headers;
}
