import type { Config } from '../config/schema.js';
import { createRedisClient, redisTargetOf } from '../redis/client.js';
import type { Logger } from '../telemetry/logger.js';
import type { PolicyChange } from './security-policy.js';

/** Options for createSecurityShare. */
export interface SecurityShareOptions {
  /** The `ratelimit.redis` section: where Redis is, and the key prefix (the channel and hash are `<key_prefix>security`). */
  redis: Pick<NonNullable<Config['ratelimit']['redis']>, 'url' | 'cluster' | 'sentinels' | 'sentinel_name' | 'password' | 'key_prefix'>;
  logger: Logger;
}

/**
 * Blocks and the mode shared with every agent on the same Redis: each change is kept in a hash (for
 * agents that start later) and published. Best effort: a failure is logged, never thrown (the change
 * already holds on this agent). Connects at once; `shutdown` disconnects and is safe to call twice.
 */
export interface SecurityShare {
  /** Keeps and publishes a change. */
  share(change: PolicyChange): Promise<void>;
  /** Removes the blocks of `entities` from the hash (they expired); best effort, never throws. */
  forget(entities: readonly string[]): Promise<void>;
  /** The changes kept in the hash, one per mode and blocked entity (none when Redis cannot answer). */
  load(): Promise<PolicyChange[]>;
  /** Calls `onChange` with each change another agent publishes from now on. */
  subscribe(onChange: (change: PolicyChange) => void): void;
  shutdown(): void;
}

/** Creates the Redis clients (one to write, one to subscribe). */
export function createSecurityShare(options: SecurityShareOptions): SecurityShare {
  const { logger } = options;
  const channel = `${options.redis.key_prefix}security`;
  const target = redisTargetOf(options.redis);
  const publisher = createRedisClient({ target, logger });
  const subscriber = createRedisClient({ target, logger, overrides: { enableOfflineQueue: true, maxRetriesPerRequest: null } });
  return {
    async share(change) {
      const field = change.kind === 'mode' ? 'mode' : `block:${change.kind === 'block' ? change.block.entity : change.entity}`;
      try {
        await (change.kind === 'unblock' ? publisher.hdel(channel, field) : publisher.hset(channel, field, JSON.stringify(change)));
        await publisher.publish(channel, JSON.stringify(change));
      } catch (err) {
        logger.warn({ err, change: change.kind }, 'security change not shared through redis; other agents see it after their restart');
      }
    },
    async forget(entities) {
      await publisher.hdel(channel, ...entities.map((e) => `block:${e}`)).catch((err: unknown) => logger.warn({ err, blocks: entities.length }, 'cannot remove expired blocks from the shared security state in redis'));
    },
    async load() {
      const shared = await publisher.hgetall(channel).catch((err: unknown) => {
        logger.warn({ err }, 'cannot read the shared security state from redis');
        return {};
      });
      return Object.values(shared).map((text) => JSON.parse(text) as PolicyChange);
    },
    subscribe(onChange) {
      subscriber.on('message', (_channel: string, text: string) => {
        try {
          onChange(JSON.parse(text) as PolicyChange);
        } catch (err) {
          logger.warn({ err }, 'ignoring a malformed shared security change');
        }
      });
      void subscriber.subscribe(channel).catch((err: unknown) => logger.warn({ err }, 'cannot subscribe to shared security changes'));
    },
    shutdown() {
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}
