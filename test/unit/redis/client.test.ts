import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, redisTargetOf } from '../../../src/redis/client.js';
import { haveBinary } from '../../support/binaries.js';
import { freePort, startRedis, type TestRedis } from '../../support/redis.js';
import { silentLogger } from '../../support/temp.js';
import { until } from '../../support/wait.js';

/** A debug-level logger whose lines are kept in `lines`. */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string; err?: { message: string } }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { logger, lines };
}

describe('Redis targets from the configuration', () => {
  it('map a redis section, unset fields left unset', () => {
    expect(redisTargetOf({ url: 'rediss://r:6380/2', sentinel_name: 'mymaster', password: 'pw' })).toEqual({ url: 'rediss://r:6380/2', cluster: undefined, sentinels: undefined, sentinelName: 'mymaster', password: 'pw' });
    expect(redisTargetOf({ cluster: ['a:7000', '[::1]:7001'], sentinel_name: 'm' })).toMatchObject({ cluster: ['a:7000', '[::1]:7001'], sentinelName: 'm' });
  });
});

describe('Redis clients', () => {
  it('fail fast by default, and take overrides', async () => {
    const port = await freePort();
    const standalone = createRedisClient({ target: { url: `redis://127.0.0.1:${port}`, password: 'pw' }, logger: silentLogger() });
    const subscriber = createRedisClient({ target: { url: `redis://127.0.0.1:${port}` }, logger: silentLogger(), overrides: { enableOfflineQueue: true, maxRetriesPerRequest: null } });
    try {
      expect(standalone).toBeInstanceOf(Redis);
      expect(standalone.options).toMatchObject({ port, password: 'pw', enableAutoPipelining: false, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false, connectTimeout: 2_000 });
      expect(subscriber.options).toMatchObject({ enableOfflineQueue: true, maxRetriesPerRequest: null, connectTimeout: 2_000 });
      // Nothing listens there: without an offline queue a command is refused, not held.
      await expect(standalone.ping()).rejects.toThrow();
    } finally {
      standalone.disconnect();
      subscriber.disconnect();
    }
  });

  it('connect through Sentinels to the named master, or to Cluster seeds', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const sentinel = createRedisClient({ target: { sentinels: [`127.0.0.1:${a}`, `[::1]:${b}`], sentinelName: 'primary' }, logger: silentLogger() }) as Redis;
    const cluster = createRedisClient({ target: { cluster: [`127.0.0.1:${a}`], password: 'pw' }, logger: silentLogger() });
    try {
      expect(sentinel.options).toMatchObject({ name: 'primary', sentinels: [{ host: '127.0.0.1', port: a }, { host: '::1', port: b }], enableOfflineQueue: false });
      expect(cluster).toBeInstanceOf(Cluster);
      expect((cluster as Cluster).options).toMatchObject({ enableOfflineQueue: false, redisOptions: { password: 'pw', maxRetriesPerRequest: 1, connectTimeout: 2_000 } });
    } finally {
      sentinel.disconnect();
      cluster.disconnect();
    }
  });

  it('log connection errors at debug with the caller\'s logger', async () => {
    const { logger, lines } = capturingLogger();
    const client = createRedisClient({ target: { url: `redis://127.0.0.1:${await freePort()}` }, logger: logger.child({ component: 'test' }) });
    try {
      const line = await until(() => lines.find((l) => l.msg === 'redis connection error'), 15_000, 'a connection error logged');
      expect(line).toMatchObject({ level: 20, component: 'test', err: { message: expect.stringContaining('ECONNREFUSED') as unknown } });
    } finally {
      client.disconnect();
    }
  });
});

describe.runIf(haveBinary('redis-server'))('Redis clients on a real redis-server', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('connect to the URL and answer commands', async () => {
    const client = createRedisClient({ target: { url: redis.url }, logger: silentLogger() });
    try {
      await until(() => client.status === 'ready', 15_000, 'the client to connect');
      expect(await client.ping()).toBe('PONG');
      await client.set('shared:client:test', 'v');
      expect(await client.get('shared:client:test')).toBe('v');
    } finally {
      client.disconnect();
    }
  });
});
