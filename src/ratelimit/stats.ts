import { Counter, type Registry } from 'prom-client';
import { seriesShape, type SeriesLimits } from '../telemetry/series-limits.js';
import type { Decision } from './bucket.js';
import { createHitCounts } from './hit-counts.js';
import type { Limit } from './limits.js';
import type { MatchedLimit } from './decide.js';
import type { RequestDescriptor } from './wire-request.js';

const LIMIT_LABELS = ['domain', 'descriptor'] as const;
const LIMIT_COUNTERS = ['total_hits', 'over_limit', 'near_limit', 'within_limit', 'shadow_mode'] as const;
const REFUSAL_LABELS = ['domain', 'reason'] as const;

/** The per-descriptor family (five counters a label set), as the series limits size it. */
export const LIMIT_STATS_FAMILY = { name: 'heimdall_ratelimit_total_hits_total', labels: LIMIT_LABELS.length, shape: seriesShape(LIMIT_LABELS, LIMIT_COUNTERS.map((n) => ({ name: `heimdall_ratelimit_${n}_total` }))) };
/** The security refusals family, as the series limits size it. */
export const SECURITY_REFUSALS_FAMILY = { name: 'heimdall_security_refused_total', labels: REFUSAL_LABELS.length, shape: seriesShape(REFUSAL_LABELS, [{ name: 'heimdall_security_refused_total' }]) };

/** The rate limiter's metrics whose labels may come from requests. */
export interface LimitStats {
  /** Counts one descriptor's hits under its limit. */
  record(domain: string, matched: MatchedLimit, d: Pick<RequestDescriptor, 'entries'>, hits: number, decision: Decision, capacity: number): void;
  /** Counts a descriptor the security layer refused. */
  refused(domain: string, reason: string): void;
}

/**
 * envoyproxy/ratelimit's per-descriptor statistics, in hits: total_hits, over_limit, near_limit
 * (allowed with 80% or more of the bucket used), within_limit, shadow_mode; and
 * `heimdall_security_refused_total{domain,reason}`. A configured limit's label set (its domain and
 * place in the config) is bounded by the configuration, so it is always kept; with detailed_metric
 * or a request's limit override the descriptor label names the request's values, and a security
 * refusal's domain is the request's: those label sets take the series limits (values cut to the
 * length limit; past `maxSeries` label sets or the family's size budget, hits count under "__overflow__").
 */
export function createLimitStats(registry: Registry, limits: SeriesLimits, maxSeries: number): LimitStats {
  // Hits are counted as plain numbers per label set, handed to the counters when they are collected.
  const counts = createHitCounts(() => counters);
  const counter = (name: string, help: string) => new Counter({ name: `heimdall_ratelimit_${name}_total`, help, labelNames: LIMIT_LABELS, registers: [registry], collect: counts.flush });
  const counters = [
    counter('total_hits', 'Hits checked, by domain and descriptor.'),
    counter('over_limit', 'Hits refused (over the limit, not in shadow mode), by domain and descriptor.'),
    counter('near_limit', 'Hits allowed with 80% or more of the bucket used, by domain and descriptor.'),
    counter('within_limit', 'Hits allowed, by domain and descriptor.'),
    counter('shadow_mode', 'Hits over the limit but allowed by shadow mode, by domain and descriptor.'),
  ];
  const [TOTAL, OVER, NEAR, WITHIN, SHADOW] = [0, 1, 2, 3, 4] as const;
  // One slot per label set: one map lookup per check, no label hashing.
  const series = limits.family({ name: LIMIT_STATS_FAMILY.name, labelNames: LIMIT_LABELS, maxSeries, shape: LIMIT_STATS_FAMILY.shape, bind: counts.slot });
  const refusalCounter = new Counter({ name: SECURITY_REFUSALS_FAMILY.name, help: 'Descriptors refused by the security layer, by domain and reason (blocked, lockdown).', labelNames: REFUSAL_LABELS, registers: [registry] });
  const refusals = limits.family({ name: SECURITY_REFUSALS_FAMILY.name, labelNames: REFUSAL_LABELS, maxSeries, shape: SECURITY_REFUSALS_FAMILY.shape, bind: (labels) => refusalCounter.labels(labels) });
  // A configured limit's children, found once: its domain and path never change, and configured children stay.
  const configured = new WeakMap<Limit, ReturnType<typeof series.configured>>();
  const configuredOf = (domain: string, limit: Limit) => {
    let bound = configured.get(limit);
    if (!bound) configured.set(limit, (bound = series.configured([domain, limit.path])));
    return bound;
  };
  return {
    record(domain, { limit, override }, d, hits, decision, capacity) {
      const bound = limit.detailedMetric ? series.get([domain, `${limit.path}|${d.entries.map((e) => `${e.key}_${e.value}`).join('.')}`]) : override ? series.get([domain, limit.path]) : configuredOf(domain, limit);
      counts.add(bound, TOTAL, hits);
      if (!decision.allowed && !limit.shadowMode) counts.add(bound, OVER, hits);
      else if (!decision.allowed) counts.add(bound, SHADOW, hits);
      else {
        counts.add(bound, WITHIN, hits);
        if (decision.remaining <= capacity * 0.2) counts.add(bound, NEAR, hits);
      }
    },
    refused(domain, reason) {
      refusals.get([domain, reason]).inc();
    },
  };
}
