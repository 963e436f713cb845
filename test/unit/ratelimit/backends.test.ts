/** The buckets: the bounded local cache, and the backend each limit chooses (Redis on a real redis-server, with its breaker). */
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import type { BucketSpec } from '../../../src/ratelimit/bucket.js';
import { createBuckets, createLocalBackend, type Buckets } from '../../../src/ratelimit/backends.js';
import { haveBinary } from '../../support/binaries.js';
import { startRedis, type TestRedis } from '../../support/redis.js';
import { silentLogger } from '../../support/temp.js';
import { until } from '../../support/wait.js';

/** Two tokens, refilled at one a second: nothing comes back within a test unless the fake clock moves. */
const SPEC: BucketSpec = { capacity: 2, ratePerMs: 0.001 };
const LOCAL = { backend: 'local' } as const;
const SHARED = { backend: 'redis' } as const;

describe('local buckets', () => {
  it('keep at most max_keys buckets; an evicted one comes back full (counted)', async () => {
    const metrics = new Registry();
    const local = createLocalBackend({ config: validateConfig({ ratelimit: { max_keys: 1 } }).ratelimit, now: () => 0, metrics });
    expect(local.take('a', SPEC, 2)).toMatchObject({ allowed: true, remaining: 0 });
    expect(local.take('a', SPEC, 1)).toMatchObject({ allowed: false });
    expect(local.take('b', SPEC, 1)).toMatchObject({ allowed: true, remaining: 1 });
    expect(local.take('a', SPEC, 1)).toMatchObject({ allowed: true, remaining: 1 });
    expect((await metrics.getSingleMetric('heimdall_ratelimit_bucket_evictions_total')?.get())?.values[0]?.value).toBe(2);
  });

  it('keep at most max_keys short keys, and no more long keys than cache_size holds (2 bytes a character plus 256 each)', async () => {
    const fill = async (ratelimit: Record<string, unknown>, keys: number, key: (i: number) => string) => {
      const metrics = new Registry();
      const local = createLocalBackend({ config: validateConfig({ ratelimit }).ratelimit, now: () => 0, metrics });
      for (let i = 0; i < keys; i++) void local.take(key(i), SPEC, 1);
      const value = async (name: string) => (await metrics.getSingleMetric(name)?.get())?.values[0]?.value;
      return { kept: keys - ((await value('heimdall_ratelimit_bucket_evictions_total')) ?? 0), bytes: await value('heimdall_ratelimit_bucket_cache_bytes') };
    };
    expect(await fill({ max_keys: 100 }, 1_000, (i) => `k${i}`)).toMatchObject({ kept: 100 });
    // 64 KiB of 1,000-character keys: 2,256 bytes each, 29 of them.
    const long = await fill({ max_keys: 100, cache_size: '64KiB' }, 1_000, (i) => `${i}`.padEnd(1_000, '.'));
    expect(long).toEqual({ kept: 29, bytes: 29 * 2_256 });
  });

  it('without ratelimit.redis every limit is local, answered synchronously', async () => {
    const buckets = createBuckets({ config: validateConfig({}).ratelimit, now: () => 0, logger: silentLogger(), metrics: new Registry(), health: createHealthRegistry() });
    expect(buckets.shared).toBe(false);
    expect(buckets.take(SHARED, 'k', SPEC, 1)).toEqual({ allowed: true, remaining: 1, resetMs: 1000, retryMs: 0 });
    expect(buckets.take(LOCAL, 'k', SPEC, 1)).toEqual({ allowed: true, remaining: 0, resetMs: 2000, retryMs: 0 });
    await buckets.close();
  });
});

describe.runIf(haveBinary('redis-server'))('buckets shared through a real redis-server', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  /** Buckets of one agent; a generous timeout, so a loaded machine does not trip the breaker. */
  const agent = (t: { now: number }, keyPrefix: string, health = createHealthRegistry(), failureMode = 'allow', timeout = '2s') =>
    createBuckets({
      config: validateConfig({ ratelimit: { redis: { url: redis.url, timeout, failure_mode: failureMode, breaker: { failures: 1, cooldown: '1s' }, key_prefix: keyPrefix } } }).ratelimit,
      now: () => t.now,
      logger: silentLogger(),
      metrics: new Registry(),
      health,
    });
  /** Waits until Redis answers (a check of 0 hits sees the full bucket, not the failure mode's 0), moving the fake clock past each cooldown. */
  const connected = (buckets: Buckets, t: { now: number }) =>
    until(async () => {
      t.now += 1_000;
      return (await buckets.take(SHARED, `warm-up-${t.now}`, SPEC, 0)).remaining === 2;
    }, 30_000, 'redis answering');

  it("shares a backend: redis bucket between agents; a local one stays each agent's own", async () => {
    const t = { now: 0 };
    const prefix = `test:${Math.random()}:`;
    const one = agent(t, prefix);
    const two = agent(t, prefix);
    try {
      await connected(one, t);
      await connected(two, t);
      expect(one.shared).toBe(true);
      const taken = one.take(SHARED, 'k', SPEC, 2);
      expect(taken).toBeInstanceOf(Promise);
      expect(await taken).toMatchObject({ allowed: true, remaining: 0 });
      expect(await two.take(SHARED, 'k', SPEC, 1)).toMatchObject({ allowed: false, remaining: 0 });
      expect(one.take(LOCAL, 'k', SPEC, 2)).toMatchObject({ allowed: true, remaining: 0 });
      expect(two.take(LOCAL, 'k', SPEC, 2)).toMatchObject({ allowed: true, remaining: 0 });
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('says when a refused request could pass, from Redis and from its cache of refused keys alike', async () => {
    const t = { now: 0 };
    const buckets = agent(t, `test:${Math.random()}:`);
    // Three tokens, one back an hour: Redis' own clock moves, but no token comes back within the test.
    const hourly: BucketSpec = { capacity: 3, ratePerMs: 1 / 3_600_000 };
    try {
      await connected(buckets, t);
      expect(await buckets.take(SHARED, 'k', hourly, 2)).toMatchObject({ allowed: true, remaining: 1 });
      const refused = await buckets.take(SHARED, 'k', hourly, 2);
      // One token missing for these 2 hits (about an hour), two for a full bucket (about two hours).
      expect(refused).toMatchObject({ allowed: false, remaining: 1 });
      expect(refused.retryMs).toBeGreaterThan(3_500_000);
      expect(refused.retryMs).toBeLessThanOrEqual(3_600_000);
      expect(refused.resetMs).toBeGreaterThan(7_100_000);
      expect(refused.resetMs).toBeLessThanOrEqual(7_200_000);
      // The next refusal comes from the local cache (no time passed on the agent's clock): the same answer.
      expect(await buckets.take(SHARED, 'k', hourly, 2)).toEqual(refused);
    } finally {
      await buckets.close();
    }
  });

  it('answers by failure_mode with the circuit open while Redis is away (ratelimit-redis degraded), and closes it once Redis is back', async () => {
    const t = { now: 0 };
    const health = createHealthRegistry();
    const buckets = agent(t, `test:${Math.random()}:`, health, 'deny');
    try {
      await connected(buckets, t);
      expect(await buckets.take(SHARED, 'k', SPEC, 1)).toMatchObject({ allowed: true });
      expect(health.component('ratelimit-redis')?.state).toBe('ready');
      await redis.stop();
      expect(await buckets.take(SHARED, 'k', SPEC, 1)).toEqual({ allowed: false, remaining: 0, resetMs: 0, retryMs: 0 });
      expect(health.component('ratelimit-redis')).toMatchObject({ state: 'degraded', reason: expect.stringContaining('circuit open, answering by failure_mode deny') });
      await redis.start();
      await connected(buckets, t);
      expect(health.component('ratelimit-redis')?.state).toBe('ready');
    } finally {
      await buckets.close();
    }
  });

  it('gives exact counts to many concurrent checks from two agents, in a few script calls rather than one per check', async () => {
    const t = { now: 0 };
    const prefix = `test:${Math.random()}:`;
    const one = agent(t, prefix);
    const two = agent(t, prefix);
    const admin = new Redis(redis.url);
    const scriptCalls = async () => {
      const stats = await admin.info('commandstats');
      return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    };
    // Fifty tokens, one back an hour: none comes back within the test.
    const hourly: BucketSpec = { capacity: 50, ratePerMs: 1 / 3_600_000 };
    try {
      await connected(one, t);
      await connected(two, t);
      const before = await scriptCalls();
      // 200 checks of one hit in one turn of the event loop, on two buckets, plus checks of 0 hits that take nothing.
      const taken = await Promise.all(Array.from({ length: 200 }, async (_v, i) => (i % 2 === 0 ? one : two).take(SHARED, i % 4 < 2 ? 'a' : 'b', hourly, i % 10 === 9 ? 0 : 1)));
      const calls = (await scriptCalls()) - before;
      const allowed = (key: string) => taken.filter((d, i) => (i % 4 < 2 ? 'a' : 'b') === key && i % 10 !== 9 && d.allowed).length;
      expect([allowed('a'), allowed('b')]).toEqual([50, 50]);
      expect(taken.filter((d, i) => i % 10 !== 9 && !d.allowed).every((d) => d.remaining === 0)).toBe(true);
      // One agent's 100 checks fit one batch (128): one script call each, and one more when the script had to be loaded.
      expect(calls).toBeLessThanOrEqual(4);
      // The buckets are as the checks left them: empty.
      expect(await one.take(SHARED, 'a', hourly, 0)).toMatchObject({ allowed: false, remaining: 0 });
    } finally {
      admin.disconnect();
      await one.close();
      await two.close();
    }
  });

  it('answers by failure_mode within its timeout while Redis is stalled, and counts again once it answers', async () => {
    const t = { now: 0 };
    const buckets = agent(t, `test:${Math.random()}:`, createHealthRegistry(), 'deny', '300ms');
    try {
      await connected(buckets, t);
      expect(await buckets.take(SHARED, 'k', SPEC, 1)).toMatchObject({ allowed: true, remaining: 1 });
      redis.pause();
      const started = performance.now();
      const stalled = await Promise.all(['k', 'other'].map(async (key) => buckets.take(SHARED, key, SPEC, 1)));
      // Answered by the timeout (300 ms), not by Redis: well within the bound however loaded the machine.
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(stalled).toEqual([0, 1].map(() => ({ allowed: false, remaining: 0, resetMs: 0, retryMs: 0 })));
      redis.resume();
      // Once Redis answers again (past the breaker's cooldown), Redis answers the checks (a full bucket, not the failure mode's 0).
      await until(async () => {
        t.now += 1_000;
        return (await buckets.take(SHARED, `after-${t.now}`, SPEC, 0)).remaining === 2;
      }, 30_000, 'redis answering again');
    } finally {
      redis.resume();
      await buckets.close();
    }
  });
});
