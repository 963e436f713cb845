import type { Config } from '../../config/schema.js';
import { createRedisClient, redisTargetOf } from '../../redis/client.js';
import type { Logger } from '../../telemetry/logger.js';
import type { AutomationStore } from './store.js';

/** Longest wait for one Redis call of the rules engine; past it, that call counts locally. */
const COMMAND_TIMEOUT_MS = 500;
/** A Redis failure is logged at most this often. */
const WARN_EVERY_MS = 30_000;

/** Options for createRedisStore. */
export interface RedisStoreOptions {
  /** The `ratelimit.redis` section (the same Redis and key prefix as the security share); keys are `<key_prefix>{automation}:...`. */
  redis: Pick<NonNullable<Config['ratelimit']['redis']>, 'url' | 'cluster' | 'sentinels' | 'sentinel_name' | 'password' | 'key_prefix'>;
  /** Where a call goes when Redis fails or times out (counted on this agent alone for that call). */
  fallback: AutomationStore;
  logger: Logger;
  /** Wall-clock milliseconds (for the warnings' rate); default Date.now. */
  now?: (() => number) | undefined;
}

/**
 * The store shared by every agent on the same Redis: INCRBY and PFADD (with PEXPIRE) per window,
 * SET NX PX to claim, SET PX to hold. Every key expires. A failed or slow call (500 ms) is logged
 * (at most once per 30 s) and answered by the fallback instead; it never throws. All keys carry
 * one hash tag, so a Redis Cluster serves each pipeline from one node.
 */
export function createRedisStore(options: RedisStoreOptions): AutomationStore {
  const { fallback, logger } = options;
  const now = options.now ?? Date.now;
  const prefix = `${options.redis.key_prefix}{automation}:`;
// Queued while (re)connecting, each call for at most 500 ms (ioredis drops the queue when a reconnection fails).
  const client = createRedisClient({ target: redisTargetOf(options.redis), logger, overrides: { commandTimeout: COMMAND_TIMEOUT_MS, enableOfflineQueue: true } });
  let warnedAt = -Infinity;
  let failures = 0;
  /** Runs `call` on Redis; on a failure, warns (rate-limited) and runs `local`. */
  const orLocal = async <T>(what: string, call: () => Promise<T>, local: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      failures += 1;
      if (now() - warnedAt >= WARN_EVERY_MS) {
        warnedAt = now();
        logger.warn({ err, what, failures }, 'automation rules cannot reach redis; counting and deciding on this agent alone meanwhile');
        failures = 0;
      }
      return local();
    }
  };
  return {
    add: (adds) =>
      orLocal(
        'add',
        async () => {
          const p = client.pipeline();
          for (const a of adds) {
            const k = prefix + a.key;
            p.incrby(k, a.count).pexpire(k, a.ttlMs);
            if (a.entities.length > 0) p.pfadd(`${k}:e`, ...a.entities);
            p.pfcount(`${k}:e`).pexpire(`${k}:e`, a.ttlMs);
          }
          const replies = (await p.exec()) ?? [];
          const failed = replies.find(([err]) => err);
          if (failed?.[0]) throw failed[0];
          const values = replies.map(([, v]) => Number(v));
          let i = 0;
          return adds.map((a) => {
            const count = values[i] ?? 0;
            i += a.entities.length > 0 ? 3 : 2;
            const entities = values[i] ?? 0;
            i += 2;
            return { count, entities };
          });
        },
        () => fallback.add(adds),
      ),
    claim: (key, ttlMs) =>
      orLocal(
        'claim',
        async () => (await client.set(prefix + key, String(now()), 'PX', ttlMs, 'NX')) === 'OK',
        () => fallback.claim(key, ttlMs),
      ),
    async hold(key, ttlMs) {
      // Held here too: should Redis fail later, this agent still knows what it held.
      await fallback.hold(key, ttlMs);
      await orLocal('hold', async () => void (await client.set(prefix + key, String(now()), 'PX', ttlMs)), async () => undefined);
    },
    held: (keys) =>
      orLocal(
        'held',
        async () => (keys.length === 0 ? [] : (await client.mget(keys.map((k) => prefix + k))).map((v) => v !== null)),
        // Unknown while Redis fails: held (another agent's hold may be there), so no agent lowers a
        // mode during an attack because Redis was slow; it is lowered once Redis answers again.
        async () => keys.map(() => true),
      ),
    shutdown() {
      client.disconnect();
      fallback.shutdown();
    },
  };
}
