/** Rate-limit buckets under hostile descriptors: long values, many keys; memory bounded by bytes, Redis keys bounded by length. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary } from '../support/binaries.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { tempDir } from '../support/temp.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** JS heap in use after a full collection. */
const heapAfterGc = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const MiB = 1024 * 1024;

const LIMITS = `
domain: mem
descriptors:
  - key: user
    rate_limit: { unit: day, requests_per_unit: 1000 }
  - key: blocked
    rate_limit: { unit: day, requests_per_unit: 0 }
  - key: few
    rate_limit: { unit: day, requests_per_unit: 5 }
  - key: shared
    rate_limit: { unit: day, requests_per_unit: 100, backend: redis }
`;

/** A value of `bytes` characters, unique per `i`. */
const longValue = (i: number, bytes: number): string => `${String(i).padStart(8, '0')}${'v'.repeat(bytes - 8)}`;

describe('rate-limit keys: bounded by length and by bytes', () => {
  const dir = tempDir();
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    writeFileSync(join(dir.path, 'mem.yaml'), LIMITS.replace(/\n {2}- key: shared[\s\S]*$/, '\n'));
    t = await startTestAgent({ log: { level: 'info' }, ratelimit: { config_path: dir.path, cache_size: '1MiB' } });
    c = connect({ addr: t.grpcAddress });
  }, 60_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    dir.cleanup();
  });

  const check = (descriptors: Array<[string, string]>) => c.unary(RateLimitService.method.shouldRateLimit, { domain: 'mem', descriptors: descriptors.map(([key, value]) => ({ entries: [{ key, value }] })) });
  const postJson = (descriptors: Array<[string, string]>) =>
    fetch(`${t.adminUrl}/ratelimit/json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ domain: 'mem', descriptors: descriptors.map(([key, value]) => ({ entries: [{ key, value }] })) }) });

  it('60 KiB values over gRPC and /ratelimit/json: limits still apply to each value, memory stays bounded', async () => {
    // Warm up (first calls build per-method state), then measure.
    await check([['user', 'warm']]);
    await postJson([['user', 'warm']]);
    const before = heapAfterGc();
    const n = 1_000;
    for (let i = 0; i < n; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, k) => {
          const v = longValue(i + k, 60 * 1024);
          // One allowed bucket and one refused (over-limit reports keep the entity) per request.
          const reply = await check([['user', v], ['blocked', v]]);
          expect(reply.statuses.map((s) => s.code)).toEqual([RateLimitResponse_Code.OK, RateLimitResponse_Code.OVER_LIMIT]);
          const res = await postJson([['user', `j${v}`], ['blocked', `j${v}`]]);
          expect(res.status).toBe(429);
        }),
      );
    }
    const grown = heapAfterGc() - before;
    // 2 x 1,000 distinct 60 KiB values (~120 MB of keys if kept as sent) in a 1 MiB bucket cache.
    expect(grown).toBeLessThan(8 * MiB);
    // A long value is still limited on its own: its bucket is not shared with another long value.
    const v = longValue(99_999, 4096);
    const w = longValue(99_998, 4096);
    for (let i = 0; i < 5; i++) expect((await check([['few', v]])).overallCode).toBe(RateLimitResponse_Code.OK);
    expect((await check([['few', v]])).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect((await check([['few', w]])).overallCode).toBe(RateLimitResponse_Code.OK);
  }, 120_000);

  it('many short keys: the local bucket cache stays within ratelimit.cache_size (bytes, not a key count)', async () => {
    const before = heapAfterGc();
    // 64 descriptors a request, 300-character values: 32,000 buckets of ~1 KB each if all were kept.
    for (let i = 0; i < 500; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) => check(Array.from({ length: 64 }, (_, j): [string, string] => ['user', longValue((i + k) * 64 + j, 300)]))));
    }
    const grown = heapAfterGc() - before;
    expect(grown).toBeLessThan(1 * MiB + 5 * MiB);
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/heimdall_ratelimit_bucket_evictions_total \d{4,}/);
  }, 120_000);

  it('refuses an entry key longer than ratelimit.max_key_length with INVALID_ARGUMENT naming it, over gRPC and HTTP', async () => {
    const key = 'k'.repeat(300);
    const err = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'mem', descriptors: [{ entries: [{ key: 'user', value: 'a' }] }, { entries: [{ key: 'user', value: 'a' }, { key, value: 'b' }] }] }).then(
      () => undefined,
      (e: unknown) => e as ServiceError,
    );
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toBe('descriptors[1].entries[1].key: 300 characters, over ratelimit.max_key_length (256)');
    const res = await postJson([[key, 'b']]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'descriptors[0].entries[0].key: 300 characters, over ratelimit.max_key_length (256)' });
  });
});

describe.runIf(haveBinary('redis-server'))('rate-limit keys in Redis: bounded length', () => {
  const dir = tempDir();
  let redis: TestRedis;
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    redis = await startRedis();
    writeFileSync(join(dir.path, 'mem.yaml'), LIMITS);
    t = await startTestAgent({ log: { level: 'info' }, ratelimit: { config_path: dir.path, redis: { url: redis.url, timeout: '2s' } } });
    c = connect({ addr: t.grpcAddress });
  }, 60_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    await redis.stop();
    dir.cleanup();
  });

  it('a 60 KiB value makes a Redis key of at most ratelimit.max_bucket_key_length plus the config names, and is still limited on its own', async () => {
    const v = longValue(1, 60 * 1024);
    for (let i = 0; i < 100; i++) {
      const r = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'mem', descriptors: [{ entries: [{ key: 'shared', value: v }] }] });
      expect(r.overallCode).toBe(RateLimitResponse_Code.OK);
    }
    const over = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'mem', descriptors: [{ entries: [{ key: 'shared', value: v }] }] });
    expect(over.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    const other = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'mem', descriptors: [{ entries: [{ key: 'shared', value: longValue(2, 60 * 1024) }] }] });
    expect(other.overallCode).toBe(RateLimitResponse_Code.OK);
    const client = new Redis(redis.url);
    const keys = await client.keys('heimdall:rl:*');
    client.disconnect();
    expect(keys.length).toBe(2);
    for (const k of keys) expect(Buffer.byteLength(k)).toBeLessThanOrEqual(512 + 'heimdall:rl:'.length);
  });
});
