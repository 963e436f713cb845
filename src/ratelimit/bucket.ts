/**
 * A refilling token bucket: `capacity` tokens at most, refilled continuously at `ratePerMs`,
 * computed lazily from a monotonic clock when the bucket is used. Pure functions over a small
 * state object, so the local and shared backends and the tests use the same arithmetic.
 */

/** A bucket's state: tokens left at `at` (monotonic milliseconds). */
export interface BucketState {
  tokens: number;
  at: number;
}

/** A limit as a bucket: capacity (burst) and refill rate. */
export interface BucketSpec {
  capacity: number;
  ratePerMs: number;
}

/** The outcome of one check. */
export interface Decision {
  allowed: boolean;
  /** Whole tokens left after the check. */
  remaining: number;
  /** Milliseconds until the bucket is full again (0 when full; infinite when it never refills). */
  resetMs: number;
  /**
   * Milliseconds until the same request could pass: 0 when allowed, else until its `hits` (at
   * least 1) tokens are back; infinite when they never will (more than the capacity, or no refill).
   */
  retryMs: number;
}

/** A new, full bucket. */
export function fullBucket(spec: BucketSpec, now: number): BucketState {
  return { tokens: spec.capacity, at: now };
}

/**
 * Takes `hits` tokens if the bucket has them (0 checks without taking). A request for more than
 * the capacity is always refused; a refused request takes nothing. Mutates `state`.
 */
export function take(state: BucketState, spec: BucketSpec, hits: number, now: number): Decision {
  const elapsed = Math.max(0, now - state.at);
  state.tokens = Math.min(spec.capacity, state.tokens + elapsed * spec.ratePerMs);
  state.at = Math.max(state.at, now);
  const need = Math.max(hits, hits === 0 ? 1 : 0);
  const allowed = hits <= spec.capacity && state.tokens >= need && spec.capacity > 0;
  if (allowed) state.tokens -= hits;
  return decisionOf(spec, state.tokens, hits, allowed);
}

/** Milliseconds until `tokens` more are refilled at the spec's rate. */
const refillMs = (spec: BucketSpec, tokens: number): number => (tokens <= 0 ? 0 : spec.ratePerMs > 0 ? Math.ceil(tokens / spec.ratePerMs) : Number.POSITIVE_INFINITY);

/** The decision a bucket holding `tokens` answers after a check of `hits` (the shared backend computes it from Redis' answer too). */
export function decisionOf(spec: BucketSpec, tokens: number, hits: number, allowed: boolean): Decision {
  const need = Math.max(hits, 1);
  return {
    allowed,
    remaining: Math.max(0, Math.floor(tokens)),
    resetMs: refillMs(spec, spec.capacity - tokens),
    retryMs: allowed ? 0 : need > spec.capacity ? Number.POSITIVE_INFINITY : refillMs(spec, need - tokens),
  };
}
