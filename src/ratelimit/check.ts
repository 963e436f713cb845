import type { RateLimitDescriptor } from '../gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { RateLimitResponse_Code, type RateLimitRequest } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import type { Config } from '../config/schema.js';
import type { Buckets } from './backends.js';
import type { Decision } from './bucket.js';
import { bucketSpec, limitStatus, matchDescriptors, MAX_UINT32, rateLimitHeaders, validate, type Policy } from './decide.js';
import { bucketKey, shownEntries } from './keys.js';
import type { LimitsFile } from './limits-file.js';
import type { OverLimitReporter } from './over-limit.js';
import type { SecurityPolicy } from './security-policy.js';
import type { LimitStats } from './stats.js';
import type { WireResponse, WireStatus } from './wire.js';

/** One rate-limit check: the answer to a RateLimitRequest, whatever transport carried it. */
export type RateLimitCheck = (req: RateLimitRequest) => Promise<WireResponse>;

/** Options for createRateLimitCheck. */
export interface RateLimitCheckOptions {
  /** `max_key_length` (longer entry keys are refused), `max_bucket_key_length` (longer bucket keys are digested), `legacy_headers`. */
  config: Pick<Config['ratelimit'], 'max_key_length' | 'max_bucket_key_length' | 'legacy_headers'>;
  /** The limits now (read on every check, so a reload applies to the next one). */
  limits: Pick<LimitsFile, 'current'>;
  buckets: Pick<Buckets, 'take'>;
  stats: LimitStats;
  /** Block list and security mode, consulted before any limit; none: nothing is refused by it. */
  security?: Pick<SecurityPolicy, 'check'> | undefined;
  /** Where refusals are counted as aggregated events. */
  overLimit?: Pick<OverLimitReporter, 'record'> | undefined;
}

/**
 * Creates the check both transports answer with: validate the request (an AgentError
 * `invalid_argument` naming the field), match its descriptors to the current limits, let the
 * security layer refuse or shrink them, take from each bucket, and count the outcome in the
 * metrics and the over-limit reporter. Only a Redis-backed descriptor makes it wait.
 */
export function createRateLimitCheck(options: RateLimitCheckOptions): RateLimitCheck {
  const { config, stats, security, overLimit } = options;
  return async (req) => {
    validate(req, config.max_key_length);
    const matched = matchDescriptors(options.limits.current.get(req.domain), req);
    const requestHits = req.hitsAddend === 0 ? 1 : req.hitsAddend;
    const policies: Policy[] = [];
    let over = false;
    // Local buckets answer synchronously: only a Redis-backed descriptor makes the check wait.
    const evaluate = (d: RateLimitDescriptor, i: number): WireStatus | Promise<WireStatus> => {
      const verdict = security?.check(d.entries) ?? { refuse: false, factor: 1 };
      if (verdict.refuse) {
        over = true;
        stats.refused(req.domain, verdict.reason);
        overLimit?.record(req.domain, `security:${verdict.reason}`, shownEntries(d.entries), requestHits);
        return { code: RateLimitResponse_Code.OVER_LIMIT };
      }
      const m = matched[i];
      if (!m) return { code: RateLimitResponse_Code.OK };
      const { limit } = m;
      if (limit.unlimited) return { code: RateLimitResponse_Code.OK, limitRemaining: MAX_UINT32 };
      const hits = d.hitsAddend !== undefined ? Math.min(Number(d.hitsAddend), MAX_UINT32) : requestHits;
      const spec = bucketSpec(limit, verdict.factor);
      const key = bucketKey(req.domain, d.entries, `${limit.path}\u0000${spec.capacity}/${limit.requestsPerUnit}/${limit.unit}`, config.max_bucket_key_length);
      const finish = (decision: Decision): WireStatus => {
        const answer = limitStatus(limit, spec, decision);
        over ||= answer.over;
        policies.push(answer.policy);
        stats.record(req.domain, m, d, hits, decision, spec.capacity);
        if (answer.over) overLimit?.record(req.domain, limit.path, shownEntries(d.entries), hits);
        return answer.status;
      };
      const decided = options.buckets.take(limit, key, spec, hits);
      return decided instanceof Promise ? decided.then(finish) : finish(decided);
    };
    const evaluated = req.descriptors.map(evaluate);
    const statuses = evaluated.some((st) => st instanceof Promise) ? await Promise.all(evaluated.map((st) => Promise.resolve(st))) : (evaluated as WireStatus[]);
    return { overallCode: over ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK, statuses, responseHeadersToAdd: rateLimitHeaders(policies, config.legacy_headers) };
  };
}
