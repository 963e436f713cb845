/**
 * Automation rules on two agent processes (each with its own embedded storage) sharing a real
 * redis-server, driven by a real gRPC ShouldRateLimit client: a burst of refusals from many
 * addresses, split so that neither agent alone passes the rule, elevates both (one audited action
 * by the system), and both return to normal after the quiet period (one more); an incident blocks
 * its address until the block expires by itself; a pinned mode is left alone. A webhook receiver
 * (a real HTTP server) hears of each automatic action exactly once, from the agent that made it,
 * with the secret header the config takes from the environment.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { ActionState, SecurityMode, SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { startAgentProcess, untilReady, writeAgentConfig, type AgentProcess } from '../support/agent-process.js';
import { haveBinary } from '../support/binaries.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { tempDir } from '../support/temp.js';
import { sleep, until } from '../support/wait.js';

const TOKENS = { adminA: 'admin-a-token-000000001', adminB: 'admin-b-token-000000001', envoy: 'envoy-token-00000000001' };
const LIMITS = 'domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: hour, requests_per_unit: 1 }\n';
/** The webhook's secret, given to the agents in their environment (the config says `${env:HOOK_TOKEN}`). */
const HOOK_TOKEN = 'hook-secret-0000000001';
/** 20 refusals from 20 distinct addresses in one second elevate; each agent only ever sees 15 addresses. */
const rules = (hook: string) => {
  const webhook = { url: hook, headers: { authorization: 'Bearer ${env:HOOK_TOKEN}' }, backoff: '50ms' };
  return [
    { name: 'burst', on: 'refusals', threshold: 20, min_entities: 20, window: '1s', then: 'elevated', quiet: '2500ms', webhook },
    { name: 'ban', on: 'incidents', threshold: 1, window: '10s', then: 'block', block_keys: ['remote_address'], block_ttl: '3s', webhook },
  ];
};

/** A webhook receiver: every POST's JSON body and headers. */
async function startReceiver() {
  const seen: Array<{ body: Record<string, unknown>; headers: IncomingHttpHeaders }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>, headers: req.headers });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/heimdall`, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe.runIf(haveBinary('redis-server'))('security automation on two agents sharing Redis', () => {
  const dir = tempDir();
  let redis: TestRedis;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const agents: AgentProcess[] = [];
  const clients: AgentClient[] = [];
  const client = (a: AgentProcess, token: string) => {
    const c = connect({ addr: a.addr, token });
    clients.push(c);
    return c;
  };
  const agentAt = (i: number): AgentProcess => agents[i] as AgentProcess;
  const check = (a: AgentProcess, entries: Array<{ key: string; value: string }>, hitsAddend = 1) => client(a, TOKENS.envoy).unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', hitsAddend, descriptors: [{ entries }] });
  const ip = (value: string) => [{ key: 'remote_address', value }];
  const state = (a: AgentProcess) => client(a, TOKENS.adminA).unary(SecurityService.method.getState, {});
  const systemActions = async () => (await Promise.all(agents.map(async (a) => (await client(a, TOKENS.adminA).unary(SecurityService.method.listActions, { state: ActionState.EXECUTED })).actions))).flat().filter((x) => x.decidedBy === 'system');
  /** One round of the burst: addresses 0-14 on the first agent, 15-29 on the second, each checked once. */
  const burst = () => Promise.all(Array.from({ length: 30 }, (_, i) => check(agentAt(i < 15 ? 0 : 1), ip(`198.51.100.${i}`))));
  const firings = async (a: AgentProcess, rule: string) => Number((await (await fetch(`http://127.0.0.1:${a.ports.admin}/metrics`)).text()).match(new RegExp(`^heimdall_security_rule_firings_total\\{rule="${rule}"\\} (\\d+)$`, 'm'))?.[1] ?? 0);

  beforeAll(async () => {
    redis = await startRedis();
    receiver = await startReceiver();
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'edge.yaml'), LIMITS);
    for (const name of ['a', 'b']) {
      mkdirSync(join(dir.path, name));
      const config = writeAgentConfig(join(dir.path, name), {
        auth: { enabled: true, tokens: [{ name: 'admin-a', token: TOKENS.adminA, scopes: ['admin', 'query'] }, { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin'] }, { name: 'envoy', token: TOKENS.envoy, scopes: ['ratelimit'] }] },
        ratelimit: { config_path: join(dir.path, 'limits'), redis: { url: redis.url }, security: { incident_threshold: 100, automation: { allow: ['remote_address=192.0.2.200'], rules: rules(receiver.url) } } },
      });
      agents.push(await startAgentProcess(config, { env: { ...process.env, HOOK_TOKEN } }));
    }
    // Security changes are saved to storage: wait for it (seconds on a loaded machine).
    await Promise.all(agents.map((a) => untilReady(a)));
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(agents.map((a) => a.stop()));
    await redis.stop();
    await receiver.close();
    dir.cleanup();
  });

  it('elevates both agents on a burst neither sees alone, then both return to normal after the quiet period, one audited action each way', async () => {
    await until(
      async () => {
        await burst();
        const modes = await Promise.all(agents.map(async (a) => (await state(a)).mode));
        return modes.every((m) => m === SecurityMode.ELEVATED);
      },
      60_000,
      'both agents elevated',
    );
    expect((await systemActions()).map((a) => a.change.case === 'setMode' && a.change.value.mode)).toEqual([SecurityMode.ELEVATED]);
    await until(async () => (await Promise.all(agents.map(async (a) => (await state(a)).mode))).every((m) => m === SecurityMode.NORMAL), 60_000, 'both agents back to normal');
    await sleep(2_000); // a second agent that decided too would have done so by now
    const actions = await systemActions();
    expect(actions.map((a) => a.change.case === 'setMode' && a.change.value.mode).sort()).toEqual([SecurityMode.NORMAL, SecurityMode.ELEVATED].sort());
    const audited = await until(
      async () => {
        const events = (await Promise.all(agents.map(async (a) => (await client(a, TOKENS.adminA).unary(QueryService.method.listEvents, { categories: ['security'], eventTypes: ['security.action.executed'], actorId: 'system' })).events))).flat();
        return events.length >= 2 && events;
      },
      30_000,
      'the audit events of both transitions',
    );
    expect(audited.map((e) => e.message).sort()).toEqual([expect.stringMatching(/^set mode elevated executed by system: rule burst: \d+ refusals from \d+ entities within 1s$/), expect.stringMatching(/^set mode normal executed by system: no rule holding elevated fired/)]);
    expect((await firings(agentAt(0), 'burst')) + (await firings(agentAt(1), 'burst'))).toBeGreaterThanOrEqual(1);
    // The webhook heard of each transition once, from the agent that made it.
    await until(() => receiver.seen.length >= 2, 30_000, 'both notifications');
    expect(receiver.seen.map((n) => [n.body.kind, n.body.rule, n.body.mode, n.body.previous_mode])).toEqual([
      ['mode', 'burst', 'elevated', 'normal'],
      ['mode', 'burst', 'normal', 'elevated'],
    ]);
    expect(receiver.seen.map((n) => n.body.action_id).sort()).toEqual(actions.map((a) => a.id).sort());
    for (const n of receiver.seen) {
      expect(n.headers.authorization).toBe(`Bearer ${HOOK_TOKEN}`);
      expect(n.headers['content-type']).toBe('application/json');
      expect(n.body).toMatchObject({ source: 'heimdall', text: expect.stringMatching(/^Heimdall security mode (elevated|normal)/) });
    }
  });

  it('blocks the address of an incident on both agents (not an allowed one), and the block expires by itself', async () => {
    const [a, b] = [agentAt(0), agentAt(1)];
    for (const value of ['203.0.113.66', '192.0.2.200']) {
      expect((await check(a, ip(value))).overallCode).toBe(RateLimitResponse_Code.OK);
      expect((await check(a, ip(value), 100)).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT); // 100 hits over: an incident
    }
    // No limit applies to this descriptor: only a block refuses it.
    const unlimited = (agent: AgentProcess, value: string) => check(agent, [...ip(value), { key: 'path', value: '/ok' }]);
    await until(async () => (await unlimited(b, '203.0.113.66')).overallCode === RateLimitResponse_Code.OVER_LIMIT, 30_000, 'the incident blocked on the other agent');
    expect((await unlimited(a, '203.0.113.66')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    const blocks = (await state(a)).blocks;
    expect(blocks.map((x) => [x.entity, x.requestedBy])).toEqual([['remote_address=203.0.113.66', 'system']]);
    expect((await unlimited(a, '192.0.2.200')).overallCode).toBe(RateLimitResponse_Code.OK);
    await until(async () => (await unlimited(a, '203.0.113.66')).overallCode === RateLimitResponse_Code.OK && (await unlimited(b, '203.0.113.66')).overallCode === RateLimitResponse_Code.OK, 30_000, 'the block expired on both agents');
    expect((await systemActions()).filter((x) => x.change.case === 'block')).toHaveLength(1);
    const blocked = await until(() => receiver.seen.find((n) => n.body.kind === 'block'), 30_000, 'the block notification');
    expect(blocked.body).toMatchObject({ rule: 'ban', entity: 'remote_address=203.0.113.66', expires_at: expect.any(String) });
    expect(receiver.seen.filter((n) => n.body.kind === 'block')).toHaveLength(1);
  });

  it('leaves a pinned mode alone', async () => {
    const { action } = await client(agentAt(0), TOKENS.adminA).unary(SecurityService.method.requestAction, { change: { case: 'setMode', value: { mode: SecurityMode.NORMAL, pin: true } }, reason: 'hands off' });
    await client(agentAt(0), TOKENS.adminB).unary(SecurityService.method.approveAction, { id: action?.id ?? '' });
    await until(async () => (await state(agentAt(1))).pinned, 30_000, 'the pin shared');
    const before = (await firings(agentAt(0), 'burst')) + (await firings(agentAt(1), 'burst'));
    const actions = (await systemActions()).length;
    await until(
      async () => {
        await burst();
        return (await firings(agentAt(0), 'burst')) + (await firings(agentAt(1), 'burst')) > before;
      },
      60_000,
      'the burst rule fired again',
    );
    await sleep(1_000);
    for (const a of agents) expect(await state(a)).toMatchObject({ mode: SecurityMode.NORMAL, pinned: true });
    expect(await systemActions()).toHaveLength(actions);
  });
});
