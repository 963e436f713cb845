import type { Config } from '../config/schema.js';
import { createLimitPlans, limitStatus, PolicyHeaders, type LimitPlan, type LimitPlans } from './answer.js';
import type { HoneypotConfig } from '../config/automation.js';
import type { Buckets } from './backends.js';
import type { Decision } from './bucket.js';
import type { DescriptorNode } from './limits.js';
import { matchDescriptors, MAX_UINT32, validate, type MatchedLimit } from './decide.js';
import type { HoneypotHits } from './honeypot-hits.js';
import type { HoneypotTraps } from './honeypot-traps.js';
import { bucketKey, shownEntries } from './keys.js';
import type { LimitsFile } from './limits-file.js';
import type { OverLimitReporter } from './over-limit.js';
import type { SecurityPolicy } from './security-policy.js';
import type { LimitStats } from './stats.js';
import type { RateLimitInput, RequestDescriptor } from './wire-request.js';
import { RLS, type WireResponse, type WireStatus } from './wire.js';

/**
 * One rate-limit check: the answer to a RateLimitRequest (decoded by hand or by @bufbuild), whatever
 * transport carried it. The answer itself when no Redis decision is awaited, else its promise; an
 * invalid request throws (an AgentError `invalid_argument`).
 */
export type RateLimitCheck = (req: RateLimitInput) => WireResponse | Promise<WireResponse>;

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
  /** The honeypots' traps, consulted first: a descriptor that springs one is refused; none (no honeypot configured): no cost. */
  traps?: HoneypotTraps | undefined;
  /** Where hits go (blocks and reports). */
  honeypots?: Pick<HoneypotHits, 'hit'> | undefined;
}

/** What stays the same for every call of one check. */
interface CheckParts extends RateLimitCheckOptions {
  plans: LimitPlans;
}

// Statuses without a bucket are the same in every answer (frozen: answers share them).
const OK_STATUS: WireStatus = Object.freeze({ code: RLS.code.OK });
const UNLIMITED_STATUS: WireStatus = Object.freeze({ code: RLS.code.OK, limitRemaining: MAX_UINT32 });
const REFUSED_STATUS: WireStatus = Object.freeze({ code: RLS.code.OVER_LIMIT });
const NO_VERDICT = { refuse: false, factor: 1 } as const;

/**
 * One answer as it is put together: a status per descriptor, the policies' headers, whether any
 * descriptor is over, and the Redis decisions still awaited. A class: one is made per check, and
 * its methods are not closures made per call.
 */
class Answer {
  readonly statuses: WireStatus[] = [];
  readonly headers = new PolicyHeaders();
  over = false;
  pending: Array<Promise<void>> | undefined;

  constructor(
    private readonly parts: CheckParts,
    private readonly req: RateLimitInput,
  ) {}

  /** Takes from the descriptor's bucket (unless it springs a trap of `root`, the domain's tree); the status is set now (local buckets) or once Redis answers. */
  evaluate(d: RequestDescriptor, i: number, m: MatchedLimit | undefined, requestHits: number, root: DescriptorNode | undefined): void {
    const { parts, req } = this;
    const trap = parts.traps?.match(root, d);
    if (trap !== undefined) return this.trapped(d, i, trap, requestHits);
    const verdict = parts.security?.check(d.entries) ?? NO_VERDICT;
    if (verdict.refuse) {
      this.over = true;
      parts.stats.refused(req.domain, verdict.reason);
      parts.overLimit?.record(req.domain, `security:${verdict.reason}`, shownEntries(d.entries), requestHits);
      this.statuses[i] = REFUSED_STATUS;
      return;
    }
    if (!m) return void (this.statuses[i] = OK_STATUS);
    const { limit } = m;
    if (limit.unlimited) return void (this.statuses[i] = UNLIMITED_STATUS);
    const hits = d.hitsAddend !== undefined ? Math.min(Number(d.hitsAddend), MAX_UINT32) : requestHits;
    const plan = parts.plans.get(limit, verdict.factor);
    const key = bucketKey(req.domain, d.entries, plan.keySuffix, parts.config.max_bucket_key_length);
    const decided = parts.buckets.take(limit, key, plan.spec, hits);
    if (!(decided instanceof Promise)) return this.finish(d, i, m, plan, hits, decided);
    this.statuses[i] = OK_STATUS; // a place held until Redis answers
    (this.pending ??= []).push(decided.then((decision) => this.finish(d, i, m, plan, hits, decision)));
  }

  /** Refuses a descriptor that sprang `honeypot`'s trap, counts it (reason `honeypot`) and hands the hit on. */
  trapped(d: RequestDescriptor, i: number, honeypot: HoneypotConfig, requestHits: number): void {
    const { parts, req } = this;
    this.over = true;
    parts.stats.refused(req.domain, 'honeypot');
    parts.overLimit?.record(req.domain, 'security:honeypot', shownEntries(d.entries), requestHits);
    parts.honeypots?.hit(honeypot, req, d);
    this.statuses[i] = REFUSED_STATUS;
  }

  /** Records a decision: the status, the policy's headers, the metrics and an over-limit record. */
  finish(d: RequestDescriptor, i: number, m: MatchedLimit, plan: LimitPlan, hits: number, decision: Decision): void {
    const { parts, req } = this;
    const status = limitStatus(m.limit, plan, decision, this.headers);
    const over = status.code === (RLS.code.OVER_LIMIT as number);
    this.over ||= over;
    this.statuses[i] = status;
    parts.stats.record(req.domain, m, d, hits, decision, plan.spec.capacity);
    if (over) parts.overLimit?.record(req.domain, m.limit.path, shownEntries(d.entries), hits);
  }

  response(legacy: boolean): WireResponse {
    return { overallCode: this.over ? RLS.code.OVER_LIMIT : RLS.code.OK, statuses: this.statuses, responseHeadersToAdd: this.headers.headers(legacy) };
  }
}

/**
 * Creates the check both transports answer with: validate the request (an AgentError
 * `invalid_argument` naming the field), match its descriptors to the current limits, refuse those
 * that spring a honeypot's trap, let the security layer refuse or shrink the others, take from each bucket, and count the outcome in the
 * metrics and the over-limit reporter. Only a Redis-backed descriptor makes it wait (a promise); what a limit's
 * answers share (its bucket spec, key suffix, current_limit and header text) is made once per limit.
 */
export function createRateLimitCheck(options: RateLimitCheckOptions): RateLimitCheck {
  const parts: CheckParts = { ...options, plans: createLimitPlans() };
  return (req) => {
    validate(req, parts.config.max_key_length);
    const root = parts.limits.current.get(req.domain);
    const matched = matchDescriptors(root, req);
    const requestHits = req.hitsAddend === 0 ? 1 : req.hitsAddend;
    const answer = new Answer(parts, req);
    const { descriptors } = req;
    for (let i = 0; i < descriptors.length; i++) answer.evaluate(descriptors[i] as RequestDescriptor, i, matched[i], requestHits, root);
    const legacy = parts.config.legacy_headers;
    return answer.pending ? Promise.all(answer.pending).then(() => answer.response(legacy)) : answer.response(legacy);
  };
}
