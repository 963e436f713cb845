import type { BucketSpec, Decision } from './bucket.js';
import { UNIT_SECONDS, type Limit, type Unit } from './limits.js';
import { bucketSpec, MAX_UINT32 } from './decide.js';
import { RLS, type WireResponse, type WireStatus } from './wire.js';

/**
 * What one descriptor answers once its bucket decided, and the RateLimit headers of a whole answer,
 * from what each limit fixes up front (its plan): the text of a check is mostly the same for every
 * call of a limit, so it is made once per limit rather than once per call.
 */

const UNIT_CODE: Record<Unit, number> = { second: 1, minute: 2, hour: 3, day: 4, month: 5, year: 6, week: 7 };

/** What a limit's answers share, for one size of its bucket. */
export interface LimitPlan {
  spec: BucketSpec;
  /** The limit's part of a bucket key: its place and its current size. */
  keySuffix: string;
  /** The policy's window in seconds (a bucket that never refills: its unit). */
  window: number;
  /** Milliseconds in the limit's unit. */
  unitMs: number;
  /** The status' current_limit (shared by every answer: never changed). */
  currentLimit: NonNullable<WireStatus['currentLimit']>;
  /** The policy's name as a structured-field string. */
  quoted: string;
  /** Its RateLimit-Policy item. */
  policy: string;
  /** Its X-RateLimit-Limit item. */
  legacy: string;
}

/** A structured-field string for a policy name (quotes and backslashes escaped). */
const sfString = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** The plan of `limit` with its bucket scaled by `factor` (elevated security mode makes it a separate, smaller one). */
function limitPlan(limit: Limit, factor: number): LimitPlan {
  const spec = bucketSpec(limit, factor);
  const window = spec.ratePerMs > 0 ? Math.ceil(spec.capacity / spec.ratePerMs / 1000) : UNIT_SECONDS[limit.unit];
  const quoted = sfString(limit.name ?? limit.path);
  return {
    spec,
    keySuffix: `${limit.path}\u0000${spec.capacity}/${limit.requestsPerUnit}/${limit.unit}`,
    window,
    unitMs: UNIT_SECONDS[limit.unit] * 1000,
    currentLimit: Object.freeze({ ...(limit.name ? { name: limit.name } : {}), requestsPerUnit: limit.requestsPerUnit, unit: UNIT_CODE[limit.unit] }),
    quoted,
    policy: `${quoted};q=${spec.capacity};w=${window}`,
    legacy: `${spec.capacity};w=${window};name=${quoted}`,
  };
}

/** Plans of the limits in use, made once per limit (a reloaded limit is a new object, with a new plan). */
export interface LimitPlans {
  get(limit: Limit, factor: number): LimitPlan;
}

/** Creates the plans: a weak map from each limit to its plan at factor 1; other factors (elevated mode) are planned per call. */
export function createLimitPlans(): LimitPlans {
  const plans = new WeakMap<Limit, LimitPlan>();
  return {
    get(limit, factor) {
      if (factor !== 1) return limitPlan(limit, factor);
      let plan = plans.get(limit);
      if (!plan) plans.set(limit, (plan = limitPlan(limit, 1)));
      return plan;
    },
  };
}

/** Seconds as bigints, made once each for the small ones. */
const SMALL_SECONDS: bigint[] = [];
const seconds = (n: number): bigint => (n < 4096 ? (SMALL_SECONDS[n] ??= BigInt(n)) : BigInt(n));

/**
 * The RateLimit headers of one answer (draft-ietf-httpapi-ratelimit-headers), and with `legacy` the
 * draft-03 X-RateLimit-* for the policy closest to its limit (the first of those with the fewest
 * remaining), added policy by policy as descriptors are decided. A class: one is made per check.
 */
export class PolicyHeaders {
  private count = 0;
  private policy = '';
  private rate = '';
  private legacyItems = '';
  private closestQuota = 0;
  private closestRemaining = 0;
  private closestReset = 0;

  add(plan: LimitPlan, remaining: number, reset: number): void {
    const sep = this.count === 0 ? '' : ', ';
    this.policy += sep + plan.policy;
    this.rate += `${sep}${plan.quoted};r=${remaining};t=${reset}`;
    this.legacyItems += `, ${plan.legacy}`;
    if (this.count === 0 || remaining < this.closestRemaining) {
      this.closestQuota = plan.spec.capacity;
      this.closestRemaining = remaining;
      this.closestReset = reset;
    }
    this.count += 1;
  }

  headers(legacy: boolean): WireResponse['responseHeadersToAdd'] {
    if (this.count === 0) return [];
    const headers = [
      { key: 'RateLimit-Policy', value: this.policy },
      { key: 'RateLimit', value: this.rate },
    ];
    if (legacy) {
      headers.push({ key: 'X-RateLimit-Limit', value: `${this.closestQuota}${this.legacyItems}` });
      headers.push({ key: 'X-RateLimit-Remaining', value: String(this.closestRemaining) });
      headers.push({ key: 'X-RateLimit-Reset', value: String(this.closestReset) });
    }
    return headers;
  }
}

/**
 * What one descriptor answers after its bucket decided, its policy added to `headers`. OK: the
 * tokens left and the time until the bucket is full (envoyproxy/ratelimit's window reset).
 * OVER_LIMIT: 0 remaining, as envoyproxy/ratelimit answers, and the time until this request could
 * pass, in whole seconds (at least 1) in both the status and the headers; a request that never can
 * (more than the capacity, or a bucket that never refills) gets the policy's window. A limit in
 * shadow mode answers OK when over.
 */
export function limitStatus(limit: Limit, plan: LimitPlan, decision: Decision, headers: PolicyHeaders): WireStatus {
  const over = !decision.allowed && !limit.shadowMode;
  const resetMs = Number.isFinite(decision.resetMs) ? decision.resetMs : plan.unitMs;
  const retrySeconds = Number.isFinite(decision.retryMs) ? Math.max(1, Math.ceil(decision.retryMs / 1000)) : Math.max(1, plan.window);
  const remaining = over ? 0 : decision.remaining;
  headers.add(plan, remaining, over ? retrySeconds : Math.ceil(resetMs / 1000));
  return {
    code: over ? RLS.code.OVER_LIMIT : RLS.code.OK,
    currentLimit: plan.currentLimit,
    limitRemaining: Math.min(remaining, MAX_UINT32),
    durationUntilReset: over ? { seconds: seconds(retrySeconds), nanos: 0 } : { seconds: seconds(Math.floor(resetMs / 1000)), nanos: Math.floor(resetMs % 1000) * 1_000_000 },
  };
}
