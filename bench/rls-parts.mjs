// The agent's per-call parts for the in-process rate-limit benches (rls-alloc.mjs, rls-redis.mjs),
// built from dist as the rate limiter builds them, and the requests they are fed. BENCH_DIST: another
// build to load them from (e.g. the code before a change, for a same-run comparison).
import { pathToFileURL } from 'node:url';

const DIST = process.env.BENCH_DIST ? pathToFileURL(process.env.BENCH_DIST).href : new URL('../dist', import.meta.url).href;
/** The agent's per-call parts from dist, built as the rate limiter builds them. */
export async function parts(redis, redisMaxBatch) {
  const { Registry } = await import('prom-client');
  const { pino } = await import('pino');
  const { validateConfig } = await import(`${DIST}/config/load.js`);
  const { createHealthRegistry } = await import(`${DIST}/health/registry.js`);
  const { createBuckets } = await import(`${DIST}/ratelimit/backends.js`);
  const { createRateLimitCheck } = await import(`${DIST}/ratelimit/check.js`);
  const { parseDomainFile } = await import(`${DIST}/ratelimit/config.js`);
  const { createLimitStats } = await import(`${DIST}/ratelimit/stats.js`);
  const { createSecurityPolicy } = await import(`${DIST}/ratelimit/security-policy.js`);
  const { createSeriesLimits } = await import(`${DIST}/telemetry/series-limits.js`);
  const config = validateConfig({ ratelimit: redis ? { redis } : {} }).ratelimit;
  const logger = pino({ level: 'silent' });
  const metrics = new Registry();
  const limitsYaml = [
    'domain: bench',
    'descriptors:',
    '  - key: remote_address',
    '    rate_limit: { unit: second, requests_per_unit: 1000000 }',
    '    descriptors:',
    '      - key: path',
    '        rate_limit: { unit: minute, requests_per_unit: 1000000 }',
    '  - key: user',
    '    rate_limit: { name: per-user, unit: hour, requests_per_unit: 1000000 }',
    '  - key: shared_address',
    '    rate_limit: { unit: second, requests_per_unit: 1000000, backend: redis }',
    '    descriptors:',
    '      - key: shared_path',
    '        rate_limit: { unit: minute, requests_per_unit: 1000000, backend: redis }',
    '  - key: shared_user',
    '    rate_limit: { name: shared-user, unit: hour, requests_per_unit: 1000000, backend: redis }',
  ].join('\n');
  const { domain, root } = parseDomainFile('limits.yaml', limitsYaml);
  const seriesLimits = createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger });
  const stats = createLimitStats(metrics, seriesLimits, 1_000);
  const buckets = createBuckets({ config, now: () => performance.now(), logger, metrics, health: createHealthRegistry(), redisMaxBatch });
  const security = createSecurityPolicy({ config: config.security });
  const check = createRateLimitCheck({ config, limits: { current: new Map([[domain, root]]) }, buckets, stats, security });
  return Object.assign(check, { metrics, close: () => buckets.close() });
}

/** 1,000 requests as Envoy sends them, encoded; `shared`: their keys are those of the limits with `backend: redis`. */
export async function requests(shared = false) {
  const k = (key) => (shared ? `shared_${key.replace('remote_', '')}` : key);
  const { create, toBinary } = await import('@bufbuild/protobuf');
  const { RateLimitRequestSchema } = await import(`${DIST}/gen/envoy/service/ratelimit/v3/rls_pb.js`);
  const out = [];
  for (let i = 0; i < 1000; i++) {
    const ip = `10.${(i * 7) % 20}.${(i * 13) % 250}.${(i * 31) % 250}`;
    const all = [[{ key: k('remote_address'), value: ip }], [{ key: k('user'), value: `user-${(i * 17) % 2000}` }], [{ key: k('remote_address'), value: ip }, { key: k('path'), value: `/api/v1/items/${i % 50}` }]];
    const descriptors = all.slice(0, 1 + (i % 3)).map((entries) => ({ entries }));
    out.push(Buffer.from(toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, { domain: 'bench', descriptors }))));
  }
  return out;
}

/** The decoder the agent uses (the hand-written one when built), and the bare codec. */
export async function codecs() {
  const { create, fromBinary, toBinary } = await import('@bufbuild/protobuf');
  const rls = await import(`${DIST}/gen/envoy/service/ratelimit/v3/rls_pb.js`);
  const { encodeRateLimitResponse } = await import(`${DIST}/ratelimit/wire.js`);
  const hand = await import(`${DIST}/ratelimit/wire-request.js`).catch(() => undefined);
  const decode = hand ? hand.decodeRateLimitRequest : (b) => fromBinary(rls.RateLimitRequestSchema, b);
  const bare = (bytes) => {
    const req = fromBinary(rls.RateLimitRequestSchema, bytes);
    const statuses = req.descriptors.map(() => ({ code: 1, currentLimit: { requestsPerUnit: 1_000_000_000, unit: 1 }, limitRemaining: 999_999_999 }));
    return Buffer.from(toBinary(rls.RateLimitResponseSchema, create(rls.RateLimitResponseSchema, { overallCode: 1, statuses })));
  };
  return { decode, encode: encodeRateLimitResponse, bare };
}

