import { LRUCache } from 'lru-cache';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthRegistry, HealthReporter } from '../health/registry.js';
import { createRedisClient, redisTargetOf } from '../redis/client.js';
import type { Logger } from '../telemetry/logger.js';
import { decisionOf, fullBucket, take, type BucketSpec, type BucketState, type Decision } from './bucket.js';
import type { Limit } from './limits.js';
import { createRedisBatcher } from './redis-batch.js';

/** Where buckets live. A backend never throws: when it cannot decide, it answers by its failure mode. */
export interface BucketBackend {
  take(key: string, spec: BucketSpec, hits: number): Decision | Promise<Decision>;
  close(): Promise<void>;
}

/** Heap a cached bucket takes besides its key: the state object, the map entry and the cache's slots (measured ~250 bytes). */
const BUCKET_BYTES = 256;

/** Options for createLocalBackend. */
export interface LocalBackendOptions {
  /** `max_keys` (buckets at most) and `cache_size` (bytes they may take, keys included). */
  config: Pick<Config['ratelimit'], 'max_keys' | 'cache_size'>;
  /** Monotonic milliseconds. */
  now: () => number;
  metrics: Registry;
}

/**
 * In-process buckets in an LRU cache bounded by count (`max_keys`) and by bytes (`cache_size`: a
 * key at two bytes a character, plus the bucket); an evicted key comes back as a full bucket. The
 * count is kept here rather than as lru-cache's `max`, which allocates slots for every key at once
 * (3.6 MB of an idle worker's heap at the default 100,000 keys); without it, they grow with the keys.
 */
export function createLocalBackend(options: LocalBackendOptions): BucketBackend {
  const evictions = new Counter({ name: 'heimdall_ratelimit_bucket_evictions_total', help: 'Local buckets evicted from the bounded cache (they come back full).', registers: [options.metrics] });
  const buckets = new LRUCache<string, BucketState>({
    maxSize: options.config.cache_size,
    sizeCalculation: (_v, key) => key.length * 2 + BUCKET_BYTES,
    dispose: (_v, _k, reason) => void (reason === 'evict' && evictions.inc()),
  });
  new Gauge({ name: 'heimdall_ratelimit_bucket_cache_bytes', help: 'Bytes the local buckets take, as the cache counts them (bounded by ratelimit.cache_size).', registers: [options.metrics], collect() { this.set(buckets.calculatedSize); } });
  return {
    take(key, spec, hits) {
      const t = options.now();
      let state = buckets.get(key);
      if (!state) {
        buckets.set(key, (state = fullBucket(spec, t)));
        if (buckets.size > options.config.max_keys) buckets.pop(); // the least recently used, counted as evicted
      }
      return take(state, spec, hits, t);
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Atomic checks in Redis, one per key (in order: a key twice sees its first check's result): the
 * same arithmetic as bucket.ts, on Redis' clock (shared by every agent), state in a hash
 * {t: tokens, a: at ms} that expires once the bucket would be full again. ARGV holds capacity, rate
 * and hits for each key; returns {allowed, tokens as text} for each key, flattened.
 */
const BUCKET_LUA = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + tonumber(now_t[2]) / 1000
local out = {}
for i = 1, #KEYS do
  local cap = tonumber(ARGV[i * 3 - 2])
  local rate = tonumber(ARGV[i * 3 - 1])
  local hits = tonumber(ARGV[i * 3])
  local b = redis.call('HMGET', KEYS[i], 't', 'a')
  local tokens = tonumber(b[1])
  local at = tonumber(b[2])
  if tokens == nil or at == nil then tokens = cap; at = now end
  if now > at then
    tokens = math.min(cap, tokens + (now - at) * rate)
    at = now
  end
  local need = hits
  if hits == 0 then need = 1 end
  local allowed = 0
  if cap > 0 and hits <= cap and tokens >= need then
    allowed = 1
    tokens = tokens - hits
  end
  local ttl = 1000
  if rate > 0 then ttl = math.ceil((cap - tokens) / rate) + 1000 end
  redis.call('HSET', KEYS[i], 't', tostring(tokens), 'a', tostring(at))
  redis.call('PEXPIRE', KEYS[i], ttl)
  out[i * 2 - 1] = allowed
  out[i * 2] = tostring(tokens)
end
return out
`;

/** Bucket checks per script call by default: a script over 128 keys holds Redis for well under a millisecond. */
const MAX_BATCH = 128;

/** Options for createRedisBackend. */
export interface RedisBackendOptions {
  /** `ratelimit.redis`: where Redis is, the per-check timeout, failure mode, breaker and key prefix. */
  config: NonNullable<Config['ratelimit']['redis']>;
  /** Monotonic milliseconds. */
  now: () => number;
  logger: Logger;
  metrics: Registry;
  /** Where the backend reports its circuit: degraded (with the reason) while open, ready otherwise. */
  reporter?: HealthReporter | undefined;
  /** Bucket checks per script call at most (the checks of one event-loop turn go out together; 1: each alone); default 128. */
  maxBatch?: number | undefined;
}

/**
 * Buckets shared by every agent through Redis: the checks of one turn of the event loop (the
 * descriptors of a check, and concurrent checks) go out as one script call (redis-batch.ts; one
 * EVALSHA, ioredis loads the script once; each check alone with Redis Cluster, whose script calls
 * take keys of one slot), a timeout, a circuit breaker, and a short local cache of keys known to be
 * over their limit (they are refused without a round trip).
 */
export function createRedisBackend(options: RedisBackendOptions): BucketBackend {
  const logger = options.logger.child({ component: 'ratelimit-redis' });
  const { config } = options;
  const client = createRedisClient({ target: redisTargetOf(config), logger });
  client.defineCommand('heimdallBuckets', { lua: BUCKET_LUA });
  const script = client as unknown as { heimdallBuckets(numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<unknown[]> };
  const batcher = createRedisBatcher({
    run: (keys, args) => script.heimdallBuckets(keys.length, ...keys, ...args),
    timeoutMs: config.timeout,
    // A Redis Cluster client (createRedisClient makes one for cluster seeds) sends each check alone.
    maxBatch: config.cluster?.length ? 1 : (options.maxBatch ?? MAX_BATCH),
  });

  const latency = new Histogram({ name: 'heimdall_ratelimit_backend_duration_seconds', help: 'Time of one Redis bucket check.', buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025], registers: [options.metrics] });
  const errors = new Counter({ name: 'heimdall_ratelimit_backend_errors_total', help: 'Redis checks that failed or timed out (answered by the failure mode).', registers: [options.metrics] });
  const breakerState = new Gauge({ name: 'heimdall_ratelimit_circuit_open', help: 'Whether the Redis circuit breaker is open (1) or closed (0).', registers: [options.metrics] });
  // Keys refused lately: the bucket as Redis answered then, and until when the refused request could not pass.
  const overLimit = new LRUCache<string, { state: BucketState; until: number }>({ max: 10_000 });

  let failures = 0;
  let openUntil = 0;
  options.reporter?.set('ready', 'no check yet');
  const fallback = (): Decision => ({ allowed: config.failure_mode === 'allow', remaining: 0, resetMs: 0, retryMs: 0 });
  const failed = (err: unknown): Decision => {
    errors.inc();
    failures += 1;
    if (failures >= config.breaker.failures && openUntil === 0) {
      openUntil = options.now() + config.breaker.cooldown;
      breakerState.set(1);
      logger.warn({ err, failures, cooldownMs: config.breaker.cooldown, failureMode: config.failure_mode }, 'redis checks failing: circuit open, answering by the failure mode');
      options.reporter?.set('degraded', `redis checks failing (${(err as Error).message}): circuit open, answering by failure_mode ${config.failure_mode}`);
    }
    return fallback();
  };

  return {
    async take(key, spec, hits) {
      const t = options.now();
      const cached = overLimit.get(key);
      // Refused from the cache: the bucket refilled locally from what Redis answered, as Redis would.
      if (cached && hits > 0 && t < cached.until) return decisionOf(spec, Math.min(spec.capacity, cached.state.tokens + (t - cached.state.at) * spec.ratePerMs), hits, false);
      if (openUntil > 0) {
        if (t < openUntil) return fallback();
        openUntil = t + config.breaker.cooldown; // half-open: this call is the trial
      }
      const stop = latency.startTimer();
      try {
        const [allowed, tokensText] = await batcher.take(`${config.key_prefix}${key}`, spec.capacity, spec.ratePerMs, hits);
        stop();
        if (failures > 0 || openUntil > 0) logger.info('redis checks succeed again: circuit closed');
        options.reporter?.set('ready');
        failures = 0;
        openUntil = 0;
        breakerState.set(0);
        const tokens = Number(tokensText);
        const decision = decisionOf(spec, tokens, hits, allowed === 1);
        // Remember a refusal until enough tokens could have come back for the same request.
        if (!decision.allowed && Number.isFinite(decision.retryMs)) overLimit.set(key, { state: { tokens, at: t }, until: t + decision.retryMs });
        return decision;
      } catch (err) {
        return failed(err);
      }
    },
    async close() {
      client.disconnect();
      return Promise.resolve();
    },
  };
}

/** Every limit's buckets: local, or shared through Redis for limits with `backend: redis`. */
export interface Buckets {
  /** Whether limits with `backend: redis` have a Redis (`ratelimit.redis` is set). */
  readonly shared: boolean;
  /** Takes `hits` from the bucket `key` where `limit` keeps it; answers synchronously for local buckets. Never throws. */
  take(limit: Pick<Limit, 'backend'>, key: string, spec: BucketSpec, hits: number): Decision | Promise<Decision>;
  /** Disconnects from Redis. */
  close(): Promise<void>;
}

/** Options for createBuckets. */
export interface BucketsOptions {
  config: Config['ratelimit'];
  /** Monotonic milliseconds. */
  now: () => number;
  logger: Logger;
  metrics: Registry;
  /** Gets `ratelimit-redis` (the circuit's state) when Redis is configured. */
  health: Pick<HealthRegistry, 'register'>;
  /** Redis bucket checks per script call at most; default 128 (benchmarks compare 1). */
  redisMaxBatch?: number | undefined;
}

/**
 * Chooses each limit's backend: the local LRU buckets, and with `ratelimit.redis` the Redis
 * buckets (with their breaker) for limits that say `backend: redis`. Without Redis every limit is
 * local (the limits file refuses `backend: redis` then).
 */
export function createBuckets(options: BucketsOptions): Buckets {
  const { config, now, logger, metrics } = options;
  const local = createLocalBackend({ config, now, metrics });
  const shared = config.redis ? createRedisBackend({ config: config.redis, now, logger, metrics, reporter: options.health.register('ratelimit-redis', { gate: 'none' }), maxBatch: options.redisMaxBatch }) : undefined;
  return {
    shared: shared !== undefined,
    take: (limit, key, spec, hits) => (limit.backend === 'redis' && shared ? shared : local).take(key, spec, hits),
    close: async () => shared?.close(),
  };
}
