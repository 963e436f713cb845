/**
 * The per-call path as a whole (decode, check, encode) answers byte for byte what it answered before
 * it was made lean: a seeded sequence of requests over every kind of limit, on a fake clock, gives
 * the same response bytes and the same metrics as recorded (digests taken with the earlier code).
 */
import { createHash } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { RateLimitRequestSchema } from '../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createBuckets } from '../../../src/ratelimit/backends.js';
import { createRateLimitCheck } from '../../../src/ratelimit/check.js';
import { parseDomainFile } from '../../../src/ratelimit/config.js';
import { decodeRateLimitRequest } from '../../../src/ratelimit/wire-request.js';
import { encodeRateLimitResponse } from '../../../src/ratelimit/wire.js';
import { createLimitStats } from '../../../src/ratelimit/stats.js';
import { createSeriesLimits } from '../../../src/telemetry/series-limits.js';
import { prng } from '../../support/prng.js';
import { silentLogger } from '../../support/temp.js';

const LIMITS = `domain: api
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 3 }
    descriptors:
      - key: path
        rate_limit: { name: 'per "path"', unit: minute, requests_per_unit: 5, burst: 2 }
  - key: user
    rate_limit: { name: per-user, unit: hour, requests_per_unit: 4, replaces: [{ name: global }] }
  - key: global
    rate_limit: { name: global, unit: second, requests_per_unit: 100 }
  - key: tier
    value: free
    rate_limit: { unit: day, requests_per_unit: 2 }
    shadow_mode: true
  - key: tier
    value: paid
    rate_limit: { unlimited: true }
  - key: tenant
    value: acme*
    detailed_metric: true
    rate_limit: { unit: second, requests_per_unit: 1 }
  - key: never
    rate_limit: { unit: second, requests_per_unit: 0 }
`;

/** Runs `calls` seeded requests through decode, check and encode; answers the digest of every answer, refusal and metric. */
async function run(legacy: boolean, seed: number, calls: number): Promise<string> {
  const config = validateConfig({ ratelimit: { legacy_headers: legacy, max_bucket_key_length: 96 } }).ratelimit;
  const metrics = new Registry();
  let t = 1_000;
  const { domain, root } = parseDomainFile('limits.yaml', LIMITS);
  const seriesLimits = createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger: silentLogger() });
  const stats = createLimitStats(metrics, seriesLimits, 1_000);
  const buckets = createBuckets({ config, now: () => t, logger: silentLogger(), metrics, health: createHealthRegistry() });
  const recorded: string[] = [];
  const security = { check: (entries: ReadonlyArray<{ key: string; value: string }>) => (entries.some((e) => e.value === 'evil') ? { refuse: true as const, reason: 'blocked' as const } : { refuse: false as const, factor: entries.some((e) => e.value === 'suspect') ? 0.5 : 1 }) };
  const overLimit = { record: (d: string, descriptor: string, entries: ReadonlyArray<{ key: string; value: string }>, hits: number) => void recorded.push(JSON.stringify([d, descriptor, entries, hits])) };
  const check = createRateLimitCheck({ config, limits: { current: new Map([[domain, root]]) }, buckets, stats, security, overLimit });
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const values = ['1.2.3.4', '5.6.7.8', 'suspect', 'evil', 'ü-user', 'v'.repeat(120), 'acme-1', 'acme-2', 'free', 'paid'];
  const shapes = [['remote_address'], ['remote_address', 'path'], ['user'], ['global'], ['tier'], ['tenant'], ['never'], ['unknown']];
  const hash = createHash('sha256');
  for (let i = 0; i < calls; i++) {
    t += int(4) === 0 ? int(5_000) : int(50);
    const descriptors = Array.from({ length: 1 + int(3) }, () => ({
      entries: pick(shapes).map((key) => ({ key, value: int(60) === 0 ? '' : key === 'tier' ? pick(['free', 'paid']) : key === 'tenant' ? pick(['acme-1', 'acme-2', 'other']) : pick(values) })),
      ...(int(8) === 0 ? { limit: { requestsPerUnit: int(4), unit: pick([0, 1, 2, 9]) } } : {}),
      ...(int(8) === 0 ? { hitsAddend: BigInt(pick([0, 1, 2, 7, 2 ** 40])) } : {}),
    }));
    const bytes = toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, { domain: pick(['api', 'api', 'api', 'other']), descriptors, hitsAddend: pick([0, 0, 1, 3]) }));
    try {
      hash.update(encodeRateLimitResponse(await check(decodeRateLimitRequest(bytes))));
    } catch (err) {
      hash.update(`refused ${(err as Error).message}`);
    }
  }
  hash.update(recorded.join('\n'));
  hash.update(await metrics.metrics());
  return hash.digest('hex');
}

describe('the per-call path', () => {
  it('answers byte for byte as recorded before it was made lean (headers, statuses, metrics, over-limit records)', async () => {
    expect([await run(false, 1, 3000), await run(true, 2, 3000)]).toEqual(['4ad2837dabb02be9083584cc7ddbccaf155cbbb16c3a6b3f97354bec5375b07b', 'dff0ac4cbb277c3e80b362b99706ee2afd0efeaa3a462876de2c0a244c012904']);
  });
});
