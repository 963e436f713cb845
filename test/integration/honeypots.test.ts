/**
 * Honeypots end to end, with real gRPC ShouldRateLimit clients over loopback against a started agent
 * (auth on, embedded storage): a hit on either kind of trap (config entries, limits-file `honeypot:`)
 * blocks the next normal request of that entity at once, on 4317 and the worker's port; an allowed
 * entity is not blocked; a short block expires; the hit is audited, counted in /metrics and listed by
 * the dashboard; an admin's unblock lifts the block in the worker; a flood of hits from many entities
 * is bounded (reports counted or dropped) while the agent keeps answering.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { ActionState, SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { MAX_REPORTS_PER_SECOND } from '../../src/ratelimit/honeypot-hits.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';

const TOKENS = { adminA: 'hp-admin-a-token-000001', adminB: 'hp-admin-b-token-000001', rl: 'hp-ratelimit-token-0001', query: 'hp-query-token-00000001' };
const LIMITS = `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: hour, requests_per_unit: 100000 }
  - key: path
    value: /wp-login.php
    honeypot: wordpress
  - key: path
    value: /flood
    honeypot: flood
`;

const dir = tempDir();
mkdirSync(join(dir.path, 'limits'));
writeFileSync(join(dir.path, 'limits', 'edge.yaml'), LIMITS);

describe('honeypots', () => {
  let t: TestAgent;
  const clients: AgentClient[] = [];
  const client = (token: string, addr = t.grpcAddress) => {
    const c = connect({ addr, token });
    clients.push(c);
    return c;
  };
  let rl4317: AgentClient;
  let rlWorker: AgentClient;
  /** A request from `ip`, with a path descriptor when given (as Envoy's route actions make them). */
  const check = (ip: string, path?: string, c = rl4317) =>
    c.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ entries: [{ key: 'remote_address', value: ip }] }, ...(path ? [{ entries: [{ key: 'path', value: path }] }] : [])] }).then((r) => r.overallCode);
  const metric = async (line: RegExp): Promise<number> => {
    const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
    const m = text.split('\n').find((l) => line.test(l));
    return m ? Number(m.split(' ').at(-1)) : 0;
  };
  const blocks = async () => (await client(TOKENS.adminA).unary(SecurityService.method.getState, {})).blocks;

  beforeAll(async () => {
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'admin-a', token: TOKENS.adminA, scopes: ['admin'] },
          { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin'] },
          { name: 'envoy', token: TOKENS.rl, scopes: ['ratelimit'] },
          { name: 'reader', token: TOKENS.query, scopes: ['query'] },
        ],
      },
      ingest: { batch: { max_delay: '20ms' } },
      ratelimit: {
        config_path: join(dir.path, 'limits'),
        security: {
          automation: {
            allow: ['remote_address=10.1.*'],
            honeypots: [
              { name: 'dotenv', entries: ['path=/.env*'], block_keys: ['remote_address'], block_ttl: '1s' },
              { name: 'wordpress', block_keys: ['remote_address'], block_ttl: '1h' },
              { name: 'flood', block_keys: ['remote_address'], block_ttl: '1h' },
            ],
          },
        },
      },
    });
    rl4317 = client(TOKENS.rl);
    rlWorker = client(TOKENS.rl, t.ratelimitAddress);
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await t?.stop();
    dir.cleanup();
  });

  it('a config-entries trap: the hit is refused, the next normal request of that address is refused at once (both ports), others pass; the 1 s block ends', async () => {
    expect(await check('203.0.113.5')).toBe(RateLimitResponse_Code.OK);
    expect(await check('203.0.113.5', '/.env.production')).toBe(RateLimitResponse_Code.OVER_LIMIT);
    // At once: the worker's own block, before (or whether) the main thread stored it.
    expect(await check('203.0.113.5')).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(await check('203.0.113.5', undefined, rlWorker)).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(await check('203.0.113.6')).toBe(RateLimitResponse_Code.OK);
    // The block expires after its TTL (polled: whether the main thread stored it by then or not).
    await expect.poll(() => check('203.0.113.5'), { timeout: 20_000, interval: 200 }).toBe(RateLimitResponse_Code.OK);
    expect(await check('203.0.113.5', undefined, rlWorker)).toBe(RateLimitResponse_Code.OK);
  });

  it('a limits-file trap (honeypot: on a descriptor without a rate_limit) blocks the address, stored as an automatic action; an allowed address is not blocked', async () => {
    expect(await check('198.51.100.7', '/wp-login.php')).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(await check('198.51.100.7')).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(await check('198.51.100.7', undefined, rlWorker)).toBe(RateLimitResponse_Code.OVER_LIMIT);
    await expect.poll(async () => (await blocks()).map((b) => [b.entity, b.reason, b.requestedBy, b.approvedBy]), { timeout: 20_000 }).toContainEqual(['remote_address=198.51.100.7', 'honeypot wordpress', 'system', 'system']);
    // The action is recorded once its write to storage returns, which may come after the block applies.
    const executed = async () => (await client(TOKENS.adminA).unary(SecurityService.method.listActions, { state: ActionState.EXECUTED })).actions.find((a) => a.change.case === 'block' && a.change.value.entity === 'remote_address=198.51.100.7');
    await expect.poll(executed, { timeout: 20_000 }).toMatchObject({ requestedBy: 'system', decidedBy: 'system' });
    // The allow list: the trap refuses the hit itself, but the address is not blocked.
    expect(await check('10.1.2.3', '/wp-login.php')).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(await check('10.1.2.3')).toBe(RateLimitResponse_Code.OK);
    expect(await check('10.1.2.3', undefined, rlWorker)).toBe(RateLimitResponse_Code.OK);
  });

  it('audits each hit, counts it in /metrics and lists it on the dashboard, newest first', async () => {
    await expect.poll(() => metric(/^heimdall_security_honeypot_hits_total\{honeypot="wordpress"\}/), { timeout: 20_000 }).toBe(2);
    expect(await metric(/^heimdall_security_honeypot_hits_total\{honeypot="dotenv"\}/)).toBe(1);
    await expect.poll(() => metric(/^heimdall_security_refused_total\{domain="edge",reason="honeypot"\}/), { timeout: 20_000 }).toBe(3);
    await expect.poll(async () => (await client(TOKENS.query).unary(QueryService.method.listEvents, { eventTypes: ['security.honeypot.hit'] })).events, { timeout: 20_000 }).toHaveLength(3);
    const listed = (await client(TOKENS.query).unary(QueryService.method.listEvents, { eventTypes: ['security.honeypot.hit'] })).events;
    expect(listed.map((e) => e.payload)).toContainEqual({ honeypot: 'dotenv', domain: 'edge', descriptor: 'path=/.env.production', entries: 'remote_address=203.0.113.5,path=/.env.production', blocked: ['remote_address=203.0.113.5'] });
    expect(listed.every((e) => e.category === 'security' && e.actorId === 'system')).toBe(true);
    const dashboard = await client(TOKENS.adminA).unary(SecurityService.method.getDashboard, { top: 2 });
    expect(dashboard.honeypotHits.map((h) => [h.honeypot, h.domain, h.entries, h.blocked])).toEqual([
      ['wordpress', 'edge', 'path=/wp-login.php', []],
      ['wordpress', 'edge', 'path=/wp-login.php', ['remote_address=198.51.100.7']],
    ]);
    expect(Number(dashboard.honeypotHits[0]?.time?.seconds)).toBeGreaterThanOrEqual(Number(dashboard.honeypotHits[1]?.time?.seconds));
  });

  it("an admin's unblock lifts the block in the worker too", async () => {
    const { action } = await client(TOKENS.adminA).unary(SecurityService.method.requestAction, { change: { case: 'unblock', value: { entity: 'remote_address=198.51.100.7' } }, reason: 'a tester' });
    await client(TOKENS.adminB).unary(SecurityService.method.approveAction, { id: action?.id ?? '' });
    expect(await check('198.51.100.7')).toBe(RateLimitResponse_Code.OK);
    expect(await check('198.51.100.7', undefined, rlWorker)).toBe(RateLimitResponse_Code.OK);
  });

  it(`a flood of hits from many addresses: at most ${MAX_REPORTS_PER_SECOND} reports a second, the rest counted as dropped; every hit refused, the agent keeps answering`, async () => {
    const N = 600;
    const started = Date.now();
    const codes = await Promise.all(Array.from({ length: N }, (_, i) => check(`192.0.2.${i % 250}-${Math.floor(i / 250)}`, '/flood', i % 2 ? rlWorker : rl4317)));
    const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
    expect(codes.every((c) => c === RateLimitResponse_Code.OVER_LIMIT)).toBe(true);
    expect(await check('203.0.113.99')).toBe(RateLimitResponse_Code.OK);
    expect(await metric(/^heimdall_security_honeypot_hits_total\{honeypot="flood"\}/)).toBe(N);
    const reported = (await metric(/^heimdall_security_honeypot_reports_total /)) - 3; // the three hits before
    const dropped = await metric(/^heimdall_security_honeypot_reports_dropped_total /);
    expect(reported + dropped).toBe(N);
    // The hits came within `seconds` wall-clock seconds: at most MAX_REPORTS_PER_SECOND reports each.
    expect(reported).toBeLessThanOrEqual(MAX_REPORTS_PER_SECOND * seconds);
    expect(dropped).toBeGreaterThanOrEqual(N - MAX_REPORTS_PER_SECOND * seconds);
    // Every report is processed: one block each (the main thread keeps up), and the agent still answers.
    await expect.poll(async () => (await blocks()).filter((b) => b.reason === 'honeypot flood').length, { timeout: 60_000, interval: 500 }).toBe(reported);
    expect(await check('203.0.113.99', undefined, rlWorker)).toBe(RateLimitResponse_Code.OK);
  }, 90_000);
});
