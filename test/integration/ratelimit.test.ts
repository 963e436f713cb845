/** Envoy's RLS API against a running agent, with a client built from rls.proto: every config feature and bad input. */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitUnit } from '../../src/gen/envoy/type/v3/ratelimit_unit_pb.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { SecurityMode, SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { sharedClock, startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';

const LIMITS = `
domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: minute, requests_per_unit: 3, name: per-ip }
  - key: path
    value: /login
    shadow_mode: true
    rate_limit: { unit: hour, requests_per_unit: 1 }
  - key: blocked
    rate_limit: { unit: second, requests_per_unit: 0 }
  - key: partner
    value: acme
    rate_limit: { unlimited: true }
  - key: tenant
    descriptors:
      - key: plan
        value: free
        rate_limit: { unit: hour, requests_per_unit: 1000, name: free-plan, burst: 2 }
  - key: api
    rate_limit: { unit: minute, requests_per_unit: 100, name: api-wide }
  - key: api
    value: special
    rate_limit: { unit: minute, requests_per_unit: 5, name: api-special, replaces: [{ name: api-wide }] }
`;

type Entry = [string, string];
const d = (...entries: Entry[]) => ({ entries: entries.map(([key, value]) => ({ key, value })) });

describe('rate limiting over Envoy RLS', () => {
  let t: TestAgent;
  let c: AgentClient;
  const dir = tempDir();
  const file = join(dir.path, 'edge.yaml');
  // The buckets' clock moves only when a test moves it: nothing refills while a slow machine runs the calls.
  const clock = sharedClock();
  beforeAll(async () => {
    writeFileSync(file, LIMITS);
    t = await startTestAgent({ ratelimit: { config_path: dir.path, legacy_headers: true, over_limit_window: '1s', security: { incident_threshold: 3 } } }, { clock });
    c = connect({ addr: t.grpcAddress });
  });
  afterAll(async () => {
    c.close();
    await t.stop();
    dir.cleanup();
  });

  const check = (domain: string, descriptors: ReturnType<typeof d>[], hitsAddend = 0) => c.unary(RateLimitService.method.shouldRateLimit, { domain, descriptors, hitsAddend });

  it('answers a status per descriptor, in order, and OVER_LIMIT when any is over', async () => {
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await check('edge', [d(['remote_address', '203.0.113.7']), d(['unknown', 'x'])]));
    expect(results.map((r) => r.overallCode)).toEqual([RateLimitResponse_Code.OK, RateLimitResponse_Code.OK, RateLimitResponse_Code.OK, RateLimitResponse_Code.OVER_LIMIT]);
    const first = results[0]!;
    expect(first.statuses).toHaveLength(2);
    expect(first.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OK, currentLimit: { name: 'per-ip', requestsPerUnit: 3, unit: 2 }, limitRemaining: 2 });
    expect(first.statuses[1]).toMatchObject({ code: RateLimitResponse_Code.OK, limitRemaining: 0 });
    expect(first.statuses[1]?.currentLimit).toBeUndefined();
    const last = results[3]!;
    expect(last.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OVER_LIMIT, limitRemaining: 0 });
    // One token back every 20 s: the reset is at most a minute away.
    expect(Number(last.statuses[0]?.durationUntilReset?.seconds)).toBeGreaterThan(0);
    expect(Number(last.statuses[0]?.durationUntilReset?.seconds)).toBeLessThanOrEqual(60);
    const headers = Object.fromEntries(first.responseHeadersToAdd.map((h) => [h.key, h.value]));
    expect(headers['RateLimit-Policy']).toBe('"per-ip";q=3;w=60');
    expect(headers.RateLimit).toMatch(/^"per-ip";r=2;t=\d+$/);
    expect(headers['X-RateLimit-Limit']).toBe('3, 3;w=60;name="per-ip"');
    expect(headers['X-RateLimit-Remaining']).toBe('2');
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
    expect(metrics).toContain('heimdall_ratelimit_total_hits_total{domain="edge",descriptor="edge.remote_address"} 4');
    expect(metrics).toContain('heimdall_ratelimit_over_limit_total{domain="edge",descriptor="edge.remote_address"} 1');
    expect(metrics).toContain('heimdall_ratelimit_within_limit_total{domain="edge",descriptor="edge.remote_address"} 3');
    expect(metrics).toContain('heimdall_ratelimit_near_limit_total{domain="edge",descriptor="edge.remote_address"} 1');
    // Another address has its own bucket.
    expect((await check('edge', [d(['remote_address', '198.51.100.1'])])).overallCode).toBe(RateLimitResponse_Code.OK);
  });

  it('applies shadow mode, 0 per unit, unlimited, nested limits with burst, and replaces', async () => {
    const shadow = [await check('edge', [d(['path', '/login'])]), await check('edge', [d(['path', '/login'])])];
    expect(shadow.map((r) => r.overallCode)).toEqual([RateLimitResponse_Code.OK, RateLimitResponse_Code.OK]);
    expect(shadow[1]?.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OK, limitRemaining: 0 });
    expect((await check('edge', [d(['blocked', 'anything'])])).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    const unlimited = await check('edge', [d(['partner', 'acme'])], 1_000_000);
    expect(unlimited.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OK, limitRemaining: 4_294_967_295 });
    const free = [];
    for (let i = 0; i < 3; i++) free.push((await check('edge', [d(['tenant', 't1'], ['plan', 'free'])])).overallCode);
    expect(free).toEqual([RateLimitResponse_Code.OK, RateLimitResponse_Code.OK, RateLimitResponse_Code.OVER_LIMIT]);
    // Depth must match: tenant alone has no limit.
    expect((await check('edge', [d(['tenant', 't1'])])).statuses[0]?.currentLimit).toBeUndefined();
    const replaced = await check('edge', [d(['api', 'special']), d(['api', 'other'])]);
    expect(replaced.statuses[0]?.currentLimit?.name).toBe('api-special');
    expect(replaced.statuses[1]?.currentLimit).toBeUndefined();
  });

  it('takes hits_addend per request and per descriptor, 0 checking without consuming, and limit overrides', async () => {
    const ip = (v: string) => d(['remote_address', v]);
    expect((await check('edge', [ip('192.0.2.1')], 3)).statuses[0]?.limitRemaining).toBe(0);
    expect((await check('edge', [ip('192.0.2.2')], 4)).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT); // more than the capacity
    const peek = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ ...ip('192.0.2.3'), hitsAddend: 0n }] });
    expect(peek.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OK, limitRemaining: 3 });
    const two = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', hitsAddend: 1, descriptors: [{ ...ip('192.0.2.3'), hitsAddend: 2n }] });
    expect(two.statuses[0]?.limitRemaining).toBe(1);
    const override = await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ ...ip('192.0.2.4'), limit: { requestsPerUnit: 1, unit: RateLimitUnit.HOUR } }] });
    expect(override.statuses[0]).toMatchObject({ currentLimit: { requestsPerUnit: 1, unit: 3 }, limitRemaining: 0 });
  });

  it('answers OK without limits for an unknown domain, and INVALID_ARGUMENT for malformed requests', async () => {
    const unknown = await check('nowhere', [d(['a', 'b'])]);
    expect(unknown.overallCode).toBe(RateLimitResponse_Code.OK);
    expect(unknown.statuses.every((s) => s.currentLimit === undefined)).toBe(true);
    const code = async (req: Parameters<typeof c.unary<typeof RateLimitService.method.shouldRateLimit.input, typeof RateLimitService.method.shouldRateLimit.output>>[1]) => {
      try {
        await c.unary(RateLimitService.method.shouldRateLimit, req);
        return 'OK';
      } catch (err) {
        return `${status[(err as ServiceError).code]}: ${(err as ServiceError).details}`;
      }
    };
    expect(await code({ domain: '', descriptors: [d(['a', 'b'])] })).toBe('INVALID_ARGUMENT: domain: is required');
    expect(await code({ domain: 'edge', descriptors: [] })).toContain('INVALID_ARGUMENT: descriptors');
    expect(await code({ domain: 'edge', descriptors: [{ entries: [] }] })).toContain('descriptors[0].entries');
    expect(await code({ domain: 'edge', descriptors: [d(['', 'x'])] })).toBe('INVALID_ARGUMENT: descriptors[0].entries[0].key: is required');
    expect(await code({ domain: 'edge', descriptors: Array.from({ length: 10_000 }, () => d(['a', 'b'])) })).toContain('at most 64 descriptors');
  });

  it('aggregates refusals into one event per entity and window, and shows them on the security dashboard', async () => {
    for (let i = 0; i < 10; i++) await check('edge', [d(['remote_address', '203.0.113.200'])]);
    const q = connect({ addr: t.grpcAddress });
    await expect
      .poll(async () => (await q.unary(SecurityService.method.getDashboard, { top: 5 })).topEntities.find((e) => e.entity === 'remote_address=203.0.113.200')?.hits, { timeout: 10_000 })
      .toBe(7n);
    const dash = await q.unary(SecurityService.method.getDashboard, { top: 5 });
    expect(dash.overLimit.find((o) => o.domain === 'edge' && o.descriptor === 'edge.remote_address')?.hits).toBeGreaterThanOrEqual(7n);
    expect(dash.incidents.some((i) => i.entity === 'remote_address=203.0.113.200' && i.hits >= 3n)).toBe(true);
    expect(dash.mode).toBe(SecurityMode.NORMAL);
    const events = await q.unary(QueryService.method.listEvents, { eventTypes: ['ratelimit.over_limit'], categories: ['ratelimit'] });
    const mine = events.events.filter((e) => e.actorId === 'remote_address=203.0.113.200');
    expect(mine.length).toBeLessThanOrEqual(2); // one per window, not one per refusal
    expect(mine.reduce((n, e) => n + Number((e.payload as { hits: number }).hits), 0)).toBe(7);
    q.close();
  });

  it('answers the same check over HTTP: POST /ratelimit/json, 200 or 429 with the RateLimit headers and Retry-After, 400 for malformed bodies', async () => {
    const post = (body: string) => fetch(`${t.adminUrl}/ratelimit/json`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const limitHeaders = (res: Response) => Object.fromEntries([...res.headers].filter(([k]) => /^(x-)?ratelimit|^retry-after$/.test(k)));
    const req = (hitsAddend: number, value = '203.0.113.50') => JSON.stringify({ domain: 'edge', descriptors: [{ entries: [{ key: 'remote_address', value }] }], hitsAddend });
    const ok = await post(req(3));
    expect(ok.status).toBe(200);
    expect(limitHeaders(ok)).toEqual({ 'ratelimit-policy': '"per-ip";q=3;w=60', ratelimit: '"per-ip";r=0;t=60', 'x-ratelimit-limit': '3, 3;w=60;name="per-ip"', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '60' });
    expect(await ok.json()).toMatchObject({ overallCode: 'OK', statuses: [{ code: 'OK', currentLimit: { name: 'per-ip', requestsPerUnit: 3, unit: 'MINUTE' } }] });
    // 8 s later 0.4 of a token (one per 20 s) is back: one hit passes in 12 s, though the bucket is full only in 52.
    clock[0] = (clock[0] ?? 0) + 8_000;
    const over = await post(req(1));
    expect(over.status).toBe(429);
    expect(limitHeaders(over)).toEqual({ 'ratelimit-policy': '"per-ip";q=3;w=60', ratelimit: '"per-ip";r=0;t=12', 'x-ratelimit-limit': '3, 3;w=60;name="per-ip"', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '12', 'retry-after': '12' });
    expect(await over.json()).toEqual({
      overallCode: 'OVER_LIMIT',
      statuses: [{ code: 'OVER_LIMIT', currentLimit: { name: 'per-ip', requestsPerUnit: 3, unit: 'MINUTE' }, durationUntilReset: '12s' }],
      responseHeadersToAdd: [
        { key: 'RateLimit-Policy', value: '"per-ip";q=3;w=60' },
        { key: 'RateLimit', value: '"per-ip";r=0;t=12' },
        { key: 'X-RateLimit-Limit', value: '3, 3;w=60;name="per-ip"' },
        { key: 'X-RateLimit-Remaining', value: '0' },
        { key: 'X-RateLimit-Reset', value: '12' },
      ],
    });
    // A policy named after a long request value (a limit override) holds a `…`, which a header cannot carry.
    const long = 'v'.repeat(100);
    const named = await post(JSON.stringify({ domain: 'edge', descriptors: [{ entries: [{ key: 'client', value: long }], limit: { requestsPerUnit: 5, unit: 'HOUR' } }] }));
    expect(named.status).toBe(200);
    expect(named.headers.get('ratelimit')).toMatch(new RegExp(`^"edge\\.client_${'v'.repeat(32)}\\?#[\\w-]{22}#override";r=4;t=720$`));
    expect((await post('{"domain": ')).status).toBe(400);
    expect((await post(JSON.stringify({ domain: '', descriptors: [] }))).status).toBe(400);
  });

  it('reloads changed limits (an atomic swap, as a ConfigMap does), and keeps the last good ones when a file is invalid', async () => {
    const swap = (text: string) => {
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    };
    swap(LIMITS.replace('requests_per_unit: 3, name: per-ip', 'requests_per_unit: 30, name: per-ip'));
    await expect.poll(async () => (await check('edge', [d(['remote_address', '203.0.113.99'])])).statuses[0]?.currentLimit?.requestsPerUnit, { timeout: 5_000 }).toBe(30);
    swap('domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n');
    await expect.poll(async () => ((await (await fetch(`${t.adminUrl}/status`)).json()) as { components: Array<{ name: string; state: string; reason: string }> }).components.find((x) => x.name === 'ratelimit')?.state, { timeout: 5_000 }).toBe('degraded');
    const st = ((await (await fetch(`${t.adminUrl}/status`)).json()) as { components: Array<{ name: string; reason: string }> }).components.find((x) => x.name === 'ratelimit');
    expect(st?.reason).toMatch(/edge\.yaml:4: descriptors\.0\.rate_limit\.unit/);
    expect((await check('edge', [d(['remote_address', '203.0.113.98'])])).statuses[0]?.currentLimit?.requestsPerUnit).toBe(30);
    expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toMatch(/^heimdall_ratelimit_config_errors_total [1-9]/m);
    expect(t.logs.some((l) => l.msg === 'invalid rate-limit configuration; keeping the previous one' && l.line === 4)).toBe(true);
    swap(LIMITS);
    await expect.poll(async () => ((await (await fetch(`${t.adminUrl}/status`)).json()) as { components: Array<{ name: string; state: string }> }).components.find((x) => x.name === 'ratelimit')?.state, { timeout: 5_000 }).toBe('ready');
  });

  it('refuses a file without descriptors (the limits stay), and logs an error naming the domains a reload removes', async () => {
    const component = async () => ((await (await fetch(`${t.adminUrl}/status`)).json()) as { components: Array<{ name: string; state: string; reason: string }> }).components.find((x) => x.name === 'ratelimit');
    const swap = (path: string, text: string) => {
      writeFileSync(`${path}.tmp`, text);
      renameSync(`${path}.tmp`, path);
    };
    await expect.poll(async () => (await check('edge', [d(['remote_address', '203.0.113.80'])])).statuses[0]?.currentLimit?.requestsPerUnit, { timeout: 5_000 }).toBe(3);
    for (const [text, reason] of [
      ['domain: edge\n', /edge\.yaml(:\d+)?: descriptors: is required/],
      ['domain: edge\ndescriptors: []\n', /edge\.yaml:2: descriptors: needs at least one descriptor/],
    ] as const) {
      swap(file, text);
      await expect.poll(async () => (await component())?.reason ?? '', { timeout: 5_000 }).toMatch(reason);
      expect((await component())?.state).toBe('degraded');
      expect((await check('edge', [d(['remote_address', '203.0.113.81'])])).statuses[0]?.currentLimit?.requestsPerUnit).toBe(3);
    }
    swap(file, LIMITS);
    const other = join(dir.path, 'other.yaml');
    swap(other, 'domain: other\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n');
    await expect.poll(async () => (await check('other', [d(['k', 'v'])])).statuses[0]?.currentLimit?.requestsPerUnit, { timeout: 5_000 }).toBe(1);
    rmSync(other);
    await expect.poll(async () => (await check('other', [d(['k', 'v'])])).statuses[0]?.currentLimit, { timeout: 5_000 }).toBeUndefined();
    const loud = t.logs.find((l) => Array.isArray(l.lost));
    expect(loud).toMatchObject({ level: 'error', lost: ['other'], msg: 'rate-limit domains removed by the reload, no longer limited: other' });
  });
});
