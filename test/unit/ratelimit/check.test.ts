/** The one check both transports answer with: real limits, local buckets on a fake clock, real metrics. */
import { create } from '@bufbuild/protobuf';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, type RateLimitRequest } from '../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createBuckets } from '../../../src/ratelimit/backends.js';
import { createRateLimitCheck, type RateLimitCheckOptions } from '../../../src/ratelimit/check.js';
import { createHoneypotTraps } from '../../../src/ratelimit/honeypot-traps.js';
import { parseDomainFile } from '../../../src/ratelimit/config.js';
import type { Verdict } from '../../../src/ratelimit/security-policy.js';
import { createLimitStats } from '../../../src/ratelimit/stats.js';
import { createSeriesLimits } from '../../../src/telemetry/series-limits.js';
import { silentLogger } from '../../support/temp.js';

const LIMITS = 'domain: api\ndescriptors:\n  - key: ip\n    rate_limit: { name: per-ip, unit: second, requests_per_unit: 2 }\n  - key: free\n    rate_limit: { unlimited: true }\n';

/** A check over `yaml`'s limits; `verdict` stands in for the security layer's answer. */
function setup(yaml = LIMITS, verdict: (entries: ReadonlyArray<{ key: string; value: string }>) => Verdict = () => ({ refuse: false, factor: 1 }), honeypots: Pick<RateLimitCheckOptions, 'traps' | 'honeypots'> & { names?: string[] } = {}) {
  const config = validateConfig({ ratelimit: { legacy_headers: true } }).ratelimit;
  const metrics = new Registry();
  let t = 0;
  const now = () => t;
  const { domain, root } = parseDomainFile('limits.yaml', yaml, new Set(honeypots.names));
  const limits = { current: new Map([[domain, root]]) };
  const seriesLimits = createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics, logger: silentLogger() });
  const stats = createLimitStats(metrics, seriesLimits, 1_000);
  const buckets = createBuckets({ config, now, logger: silentLogger(), metrics, health: createHealthRegistry() });
  const recorded: Array<{ domain: string; descriptor: string; hits: number }> = [];
  const overLimit = { record: (d: string, descriptor: string, _e: unknown, hits: number) => void recorded.push({ domain: d, descriptor, hits }) };
  const check = createRateLimitCheck({ config, limits, buckets, stats, security: { check: verdict }, overLimit, traps: honeypots.traps, honeypots: honeypots.honeypots });
  const metric = async (name: string) => (await metrics.getSingleMetric(name)?.get())?.values;
  return { check, limits, recorded, metric, advance: (ms: number) => void (t += ms) };
}

const request = (domain: string, ...descriptors: Array<Record<string, string>>): RateLimitRequest =>
  create(RateLimitRequestSchema, { domain, descriptors: descriptors.map((d) => ({ entries: Object.entries(d).map(([key, value]) => ({ key, value })) })) });

describe('rate-limit check', () => {
  it('answers OK until the bucket is empty, OVER_LIMIT then, and OK again once it refilled (fake clock)', async () => {
    const { check, recorded, metric, advance } = setup();
    const first = await check(request('api', { ip: '1.2.3.4' }));
    expect(first.overallCode).toBe(RateLimitResponse_Code.OK);
    expect(first.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OK, limitRemaining: 1, currentLimit: { name: 'per-ip', requestsPerUnit: 2 } });
    expect(first.responseHeadersToAdd).toEqual(expect.arrayContaining([{ key: 'RateLimit-Policy', value: '"per-ip";q=2;w=1' }, { key: 'X-RateLimit-Remaining', value: '1' }]));
    await check(request('api', { ip: '1.2.3.4' }));
    const over = await check(request('api', { ip: '1.2.3.4' }));
    expect(over.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(recorded).toEqual([{ domain: 'api', descriptor: 'api.ip', hits: 1 }]);
    expect((await check(request('api', { ip: '5.6.7.8' }))).overallCode).toBe(RateLimitResponse_Code.OK);
    advance(1_000);
    expect((await check(request('api', { ip: '1.2.3.4' }))).overallCode).toBe(RateLimitResponse_Code.OK);
    expect(await metric('heimdall_ratelimit_over_limit_total')).toEqual([{ labels: { domain: 'api', descriptor: 'api.ip' }, value: 1 }]);
  });

  it('refuses with 0 remaining and the time until the request could pass, in the status and the headers alike', async () => {
    const { check, advance } = setup('domain: api\ndescriptors:\n  - key: user\n    rate_limit: { name: per-user, unit: minute, requests_per_unit: 5 }\n');
    const over = (seconds: number) => ({
      overallCode: RateLimitResponse_Code.OVER_LIMIT,
      statuses: [{ code: RateLimitResponse_Code.OVER_LIMIT, currentLimit: { name: 'per-user', requestsPerUnit: 5, unit: 2 }, limitRemaining: 0, durationUntilReset: { seconds: BigInt(seconds), nanos: 0 } }],
      responseHeadersToAdd: [
        { key: 'RateLimit-Policy', value: '"per-user";q=5;w=60' },
        { key: 'RateLimit', value: `"per-user";r=0;t=${seconds}` },
        { key: 'X-RateLimit-Limit', value: '5, 5;w=60;name="per-user"' },
        { key: 'X-RateLimit-Remaining', value: '0' },
        { key: 'X-RateLimit-Reset', value: String(seconds) },
      ],
    });
    // A token every 12 s: the sixth request could pass in 12 s, though the bucket is full only in 60.
    for (let i = 0; i < 5; i++) await check(request('api', { user: 'a' }));
    expect(await check(request('api', { user: 'a' }))).toEqual(over(12));
    // 3 hits with 2 tokens left: refused with 0 remaining (not 2), one token (12 s) away.
    await check(create(RateLimitRequestSchema, { ...request('api', { user: 'b' }), hitsAddend: 3 }));
    expect(await check(create(RateLimitRequestSchema, { ...request('api', { user: 'b' }), hitsAddend: 3 }))).toEqual(over(12));
    // Rounded up to whole seconds: 0.1 s later, 11.9 s is 12; 11.5 s later, 0.5 s is 1.
    advance(100);
    expect(await check(request('api', { user: 'a' }))).toEqual(over(12));
    advance(11_400);
    expect(await check(request('api', { user: 'a' }))).toEqual(over(1));
    // More than the capacity never passes: the policy's window.
    expect(await check(create(RateLimitRequestSchema, { ...request('api', { user: 'c' }), hitsAddend: 6 }))).toEqual(over(60));
  });

  it('answers OK for descriptors without a limit and for unlimited ones, without headers', async () => {
    const { check } = setup();
    const reply = await check(request('api', { free: 'x' }, { other: 'y' }));
    expect(reply).toEqual({ overallCode: RateLimitResponse_Code.OK, statuses: [{ code: RateLimitResponse_Code.OK, limitRemaining: 4_294_967_295 }, { code: RateLimitResponse_Code.OK }], responseHeadersToAdd: [] });
    expect((await check(request('elsewhere', { ip: '1' }))).overallCode).toBe(RateLimitResponse_Code.OK);
  });

  it('answers local buckets at once, not as a promise (no Redis decision to await)', () => {
    const { check } = setup();
    const reply = check(request('api', { ip: '1.2.3.4' }));
    expect(reply).not.toBeInstanceOf(Promise);
    expect((reply as Exclude<typeof reply, Promise<unknown>>).overallCode).toBe(RateLimitResponse_Code.OK);
  });

  it('reads the limits on every check, so a reload applies to the next one', async () => {
    const { check, limits } = setup();
    const { domain, root } = parseDomainFile('limits.yaml', 'domain: api\ndescriptors:\n  - key: ip\n    rate_limit: { unit: second, requests_per_unit: 0 }\n');
    limits.current = new Map([[domain, root]]);
    expect((await check(request('api', { ip: '1.2.3.4' }))).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
  });

  it('throws an invalid_argument AgentError naming the field for an invalid request', async () => {
    const { check } = setup();
    expect(() => check(request('', { ip: '1' }))).toThrow(new AgentError('invalid_argument', 'domain: is required'));
    expect(() => check(request('api', { ['k'.repeat(300)]: '1' }))).toThrow('descriptors[0].entries[0].key: 300 characters, over ratelimit.max_key_length (256)');
  });

  it('lets the security layer refuse a descriptor before its limit (counted and reported) or shrink its bucket', async () => {
    const blocked = setup(LIMITS, (entries) => (entries[0]?.value === 'bad' ? { refuse: true, reason: 'blocked' } : { refuse: false, factor: 0.5 }));
    const refused = await blocked.check(request('api', { ip: 'bad' }, { free: 'x' }));
    expect(refused.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(refused.statuses[0]).toEqual({ code: RateLimitResponse_Code.OVER_LIMIT });
    expect(blocked.recorded).toEqual([{ domain: 'api', descriptor: 'security:blocked', hits: 1 }]);
    expect(await blocked.metric('heimdall_security_refused_total')).toEqual([{ labels: { domain: 'api', reason: 'blocked' }, value: 1 }]);
    // Elevated: half the bucket (1 of 2), a bucket of its own.
    expect((await blocked.check(request('api', { ip: 'good' }))).statuses[0]?.limitRemaining).toBe(0);
    expect((await blocked.check(request('api', { ip: 'good' }))).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
  });

  it('refuses a descriptor that springs a honeypot trap before the security layer and its limit (counted as honeypot), and hands the hit on', async () => {
    const honeypots = validateConfig({ ratelimit: { security: { automation: { honeypots: [{ name: 'env', entries: ['path=/.env'] }, { name: 'trap' }] } } } }).ratelimit.security.automation.honeypots;
    const hits: string[] = [];
    const yaml = `${LIMITS}  - key: path\n    value: /wp-admin\n    honeypot: trap\n`;
    const trapped = setup(yaml, () => ({ refuse: true, reason: 'blocked' }), { traps: createHoneypotTraps(honeypots), honeypots: { hit: (h, req, d) => void hits.push(`${h.name} ${req.domain} ${d.entries.map((e) => e.value).join()}`) }, names: ['trap'] });
    const answer = await trapped.check(request('api', { free: 'x' }, { path: '/wp-admin' }, { path: '/.env', ip: '1.2.3.4' }));
    expect(answer.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(answer.statuses.map((s) => s.code)).toEqual([RateLimitResponse_Code.OVER_LIMIT, RateLimitResponse_Code.OVER_LIMIT, RateLimitResponse_Code.OVER_LIMIT]);
    expect(hits).toEqual(['trap api /wp-admin', 'env api /.env,1.2.3.4']);
    expect(trapped.recorded).toEqual([
      { domain: 'api', descriptor: 'security:blocked', hits: 1 },
      { domain: 'api', descriptor: 'security:honeypot', hits: 1 },
      { domain: 'api', descriptor: 'security:honeypot', hits: 1 },
    ]);
    expect(await trapped.metric('heimdall_security_refused_total')).toEqual([
      { labels: { domain: 'api', reason: 'blocked' }, value: 1 },
      { labels: { domain: 'api', reason: 'honeypot' }, value: 2 },
    ]);
  });
});
