import { createRequire } from 'node:module';
import type * as Ioredis from 'ioredis';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { splitHostPort } from '../config/host-port.js';
import type { Logger } from '../telemetry/logger.js';

/** Where Redis is: a standalone URL, Cluster seeds, or Sentinels with the master's name. */
export interface RedisTarget {
  /** `redis://host:port/db` (`rediss://` for TLS) of a standalone server; default `redis://127.0.0.1:6379`. */
  url?: string | undefined;
  /** Cluster seed nodes (host:port); set to use Redis Cluster. */
  cluster?: readonly string[] | undefined;
  /** Sentinels (host:port); set to use Redis Sentinel. */
  sentinels?: readonly string[] | undefined;
  /** The master the Sentinels monitor; default `mymaster`. */
  sentinelName?: string | undefined;
  password?: string | undefined;
}

/** A `redis` section of the configuration (`ratelimit.redis`, `jobs.redis`), as the schema parses it. */
export interface RedisSection {
  url?: string | undefined;
  cluster?: string[] | undefined;
  sentinels?: string[] | undefined;
  sentinel_name: string;
  password?: string | undefined;
}

/** Where a configuration section's Redis is. */
export function redisTargetOf(section: RedisSection): RedisTarget {
  return { url: section.url, cluster: section.cluster, sentinels: section.sentinels, sentinelName: section.sentinel_name, password: section.password };
}

/** Options for createRedisClient. */
export interface RedisClientOptions {
  target: RedisTarget;
  /** Connection errors go here at debug level (the client reconnects by itself); pass the caller's child logger. */
  logger: Logger;
  /**
   * Changes to the defaults: no offline queue and one retry per request (calls fail fast while
   * Redis is away), no auto-pipelining, connect within 2 s. A subscriber wants
   * `{ enableOfflineQueue: true, maxRetriesPerRequest: null }`.
   */
  overrides?: RedisOptions | undefined;
}

/**
 * ioredis, loaded at the first client: an agent without Redis never loads it (~40 modules, ~20 MiB
 * at start). It is CommonJS, so `require` loads it synchronously and createRedisClient stays sync.
 */
const loadIoredis = (): typeof Ioredis => createRequire(import.meta.url)('ioredis') as typeof Ioredis;

/** host:port (validated by the config schema) as ioredis wants it. */
const hostPort = (s: string) => splitHostPort(s) ?? { host: s, port: 6379 };

/**
 * The one way the agent connects to Redis: a standalone, Sentinel or Cluster client for the
 * target, connecting at once, its connection errors logged at debug. The caller disconnects it.
 */
export function createRedisClient(options: RedisClientOptions): Redis | Cluster {
  const { target } = options;
  const common: RedisOptions = { password: target.password, enableAutoPipelining: false, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false, connectTimeout: 2_000, ...options.overrides };
  const { Cluster: ClusterClient, Redis: RedisClient } = loadIoredis();
  const client = target.cluster?.length
    ? new ClusterClient(target.cluster.map(hostPort), { redisOptions: common, enableOfflineQueue: common.enableOfflineQueue ?? false })
    : target.sentinels?.length
      ? new RedisClient({ ...common, sentinels: target.sentinels.map(hostPort), name: target.sentinelName ?? 'mymaster' })
      : new RedisClient(target.url ?? 'redis://127.0.0.1:6379', common);
  client.on('error', (err: Error) => options.logger.debug({ err }, 'redis connection error'));
  return client;
}
