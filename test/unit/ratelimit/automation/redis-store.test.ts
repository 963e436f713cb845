/** The rules engine's store shared through a real redis-server: counts add up across agents, one claim wins, holds are shared, every key expires, and a Redis outage falls back to local counting without throwing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../../../../src/ratelimit/automation/redis-store.js';
import { createMemoryStore, type AutomationStore } from '../../../../src/ratelimit/automation/store.js';
import { createRedisClient } from '../../../../src/redis/client.js';
import { createLogger } from '../../../../src/telemetry/logger.js';
import { haveBinary } from '../../../support/binaries.js';
import { startRedis, type TestRedis } from '../../../support/redis.js';
import { silentLogger } from '../../../support/temp.js';

describe.runIf(haveBinary('redis-server'))('automation store in Redis', () => {
  let redis: TestRedis;
  const stores: AutomationStore[] = [];
  const store = (logger = silentLogger()) => {
    const s = createRedisStore({ redis: { url: redis.url, sentinel_name: 'mymaster', key_prefix: 'test:' }, fallback: createMemoryStore(Date.now), logger });
    stores.push(s);
    return s;
  };
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const s of stores) s.shutdown();
    await redis.stop();
  });

  it('adds counts and distinct entities up across agents, lets one claim win, and shares holds', async () => {
    const [a, b] = [store(), store()];
    expect(await a.add([{ key: 'n:r:1', count: 4, entities: ['x', 'y'], ttlMs: 2_000 }, { key: 'n:q:1', count: 1, entities: [], ttlMs: 2_000 }])).toEqual([{ count: 4, entities: 2 }, { count: 1, entities: 0 }]);
    expect(await b.add([{ key: 'n:r:1', count: 3, entities: ['y', 'z'], ttlMs: 2_000 }])).toEqual([{ count: 7, entities: 3 }]);
    const claims = await Promise.all([a.claim('c:r:1', 2_000), b.claim('c:r:1', 2_000)]);
    expect(claims.sort()).toEqual([false, true]);
    await a.hold('h:r', 60_000);
    expect(await b.held(['h:r', 'h:q'])).toEqual([true, false]);
  });

  it('sets an expiry on every key it writes', async () => {
    const s = store();
    await s.add([{ key: 'n:e:1', count: 1, entities: ['x'], ttlMs: 2_000 }]);
    await s.claim('c:e:1', 2_000);
    await s.hold('h:e', 3_000);
    const client = createRedisClient({ target: { url: redis.url }, logger: silentLogger(), overrides: { enableOfflineQueue: true } });
    try {
      const keys = await client.keys('test:{automation}:*');
      expect(keys.length).toBeGreaterThanOrEqual(4);
      for (const k of keys) expect(await client.pttl(k)).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });

  it('counts and decides on this agent alone while Redis is away, warns once, and never throws', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const s = store(createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } }));
    await s.hold('h:o', 60_000);
    redis.pause();
    try {
      const started = Date.now();
      expect(await s.add([{ key: 'n:o:1', count: 2, entities: ['x'], ttlMs: 2_000 }])).toEqual([{ count: 2, entities: 1 }]);
      expect(await s.claim('c:o:1', 2_000)).toBe(true);
      expect(await s.held(['h:o'])).toEqual([true]); // held here too
      expect(Date.now() - started).toBeLessThan(10_000); // each call gives up after 500 ms
      expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['automation rules cannot reach redis; counting and deciding on this agent alone meanwhile']);
    } finally {
      redis.resume();
    }
  });
});
