/** The rate limiter's security layer: approvals by a second admin, blocks, modes, audit events, and state restored after a restart. */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { ActionState, SecurityMode, SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';

const TOKENS = { adminA: 'admin-a-token-00000001', adminB: 'admin-b-token-00000001', rl: 'ratelimit-token-000001', query: 'query-token-0000000001' };
const dir = tempDir();
mkdirSync(join(dir.path, 'limits'));
writeFileSync(join(dir.path, 'limits', 'edge.yaml'), 'domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: hour, requests_per_unit: 10 }\n  - key: health\n    rate_limit: { unit: hour, requests_per_unit: 10 }\n');

const overrides = (approvalTtl = '1h') => ({
  auth: {
    enabled: true,
    tokens: [
      { name: 'admin-a', token: TOKENS.adminA, scopes: ['admin'] },
      { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin'] },
      { name: 'envoy', token: TOKENS.rl, scopes: ['ratelimit'] },
      { name: 'reader', token: TOKENS.query, scopes: ['query'] },
    ],
  },
  storage: { embedded: { path: join(dir.path, 'data') } },
  ratelimit: { config_path: join(dir.path, 'limits'), security: { lockdown_allow: ['health=probe'], approval_ttl: approvalTtl } },
});

const failure = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return (err as ServiceError).code;
  }
  return status.OK;
};

describe('security layer', () => {
  let t: TestAgent;
  const clients: AgentClient[] = [];
  const client = (token: string) => {
    const c = connect({ addr: t.grpcAddress, token });
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of clients) c.close();
    await t.stop();
    dir.cleanup();
  });
  /** The same check on the rate-limit worker's own port. */
  const onWorker = (ip: string, token = TOKENS.rl) => {
    const c = connect({ addr: t.ratelimitAddress, token });
    clients.push(c);
    return c.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ entries: [{ key: 'remote_address', value: ip }] }] });
  };
  const check = (ip: string) => client(TOKENS.rl).unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ entries: [{ key: 'remote_address', value: ip }] }] });
  const act = async (change: Parameters<AgentClient['unary']>[1], requester = TOKENS.adminA, approver = TOKENS.adminB) => {
    const { action } = await client(requester).unary(SecurityService.method.requestAction, change);
    expect(action?.state).toBe(ActionState.PENDING);
    return client(approver).unary(SecurityService.method.approveAction, { id: action?.id ?? '' });
  };

  it('blocks an entity only once a second admin approves, and audits every step', async () => {
    t = await startTestAgent(overrides());
    await expect.poll(async () => ((await (await fetch(`${t.adminUrl}/status`, { headers: { authorization: `Bearer ${TOKENS.adminA}` } })).json()) as { components: Array<{ name: string; reason: string }> }).components.find((c) => c.name === 'security')?.reason ?? '', { timeout: 10_000 }).toContain('mode normal');
    const a = client(TOKENS.adminA);
    const { action } = await a.unary(SecurityService.method.requestAction, { change: { case: 'block', value: { entity: 'remote_address=203.0.113.7', reason: 'scanner', durationSeconds: 0 } }, reason: 'probing /admin' });
    expect((await check('203.0.113.7')).overallCode).toBe(RateLimitResponse_Code.OK); // pending: not yet blocked
    expect(await failure(a.unary(SecurityService.method.approveAction, { id: action?.id ?? '' }))).toBe(status.PERMISSION_DENIED);
    expect(await failure(client(TOKENS.rl).unary(SecurityService.method.approveAction, { id: action?.id ?? '' }))).toBe(status.PERMISSION_DENIED); // not an admin
    const approved = await client(TOKENS.adminB).unary(SecurityService.method.approveAction, { id: action?.id ?? '' });
    expect(approved.action).toMatchObject({ state: ActionState.EXECUTED, requestedBy: 'admin-a', decidedBy: 'admin-b' });
    expect(await failure(client(TOKENS.adminB).unary(SecurityService.method.approveAction, { id: action?.id ?? '' }))).toBe(status.FAILED_PRECONDITION);
    expect((await check('203.0.113.7')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    // Replicated to the worker with the approval: its own port refuses on the next call.
    expect((await onWorker('203.0.113.7')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect((await check('198.51.100.1')).overallCode).toBe(RateLimitResponse_Code.OK);
    const state = await a.unary(SecurityService.method.getState, {});
    expect(state.blocks.map((b) => [b.entity, b.reason, b.requestedBy, b.approvedBy])).toEqual([['remote_address=203.0.113.7', 'scanner', 'admin-a', 'admin-b']]);
    await expect
      .poll(async () => (await client(TOKENS.query).unary(QueryService.method.listEvents, { categories: ['security'] })).events.map((e) => e.eventType).sort(), { timeout: 10_000 })
      .toEqual(['security.action.executed', 'security.action.requested']);
    expect(await failure(a.unary(SecurityService.method.requestAction, { change: { case: 'block', value: { entity: 'no equals sign', reason: '', durationSeconds: 0 } } }))).toBe(status.INVALID_ARGUMENT);
  });

  it('halves limits in elevated mode, refuses all but the allow list in lockdown, and rejects', async () => {
    await act({ change: { case: 'setMode', value: { mode: SecurityMode.ELEVATED } }, reason: 'incident' });
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await check('192.0.2.10')).overallCode);
    expect(codes.filter((c) => c === RateLimitResponse_Code.OK)).toHaveLength(5);
    expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toContain('heimdall_security_mode{mode="elevated"} 1');
    // Elevated on the worker's port too: the bucket of 192.0.2.10 (5 of 10) was emptied through 4317.
    expect((await onWorker('192.0.2.10')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    await act({ change: { case: 'setMode', value: { mode: SecurityMode.LOCKDOWN } } });
    expect((await check('192.0.2.11')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect((await onWorker('192.0.2.12')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    const probe = await client(TOKENS.rl).unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ entries: [{ key: 'health', value: 'probe' }] }] });
    expect(probe.overallCode).toBe(RateLimitResponse_Code.OK);
    const { action } = await client(TOKENS.adminB).unary(SecurityService.method.requestAction, { change: { case: 'unblock', value: { entity: 'remote_address=203.0.113.7' } } });
    const rejected = await client(TOKENS.adminA).unary(SecurityService.method.rejectAction, { id: action?.id ?? '', reason: 'keep it blocked' });
    expect(rejected.action).toMatchObject({ state: ActionState.REJECTED, decidedBy: 'admin-a', reason: 'keep it blocked' });
    expect((await client(TOKENS.adminA).unary(SecurityService.method.listActions, { state: ActionState.REJECTED })).actions).toHaveLength(1);
  });

  it("the worker's port needs a token with scope ratelimit, as 4317 does", async () => {
    expect(await failure(onWorker('192.0.2.20', ''))).toBe(status.UNAUTHENTICATED);
    expect(await failure(onWorker('192.0.2.20', 'not-a-token-000000000'))).toBe(status.UNAUTHENTICATED);
    expect(await failure(onWorker('192.0.2.20', TOKENS.query))).toBe(status.PERMISSION_DENIED);
    expect(await failure(onWorker('192.0.2.20', TOKENS.rl))).toBe(status.OK);
  });

  it('restores mode and blocks after a restart, and expires actions nobody decided on', async () => {
    await t.stop().catch(() => undefined);
    t = await startTestAgent(overrides('1s'));
    const a = client(TOKENS.adminA);
    await expect.poll(async () => (await a.unary(SecurityService.method.getState, {})).mode, { timeout: 10_000 }).toBe(SecurityMode.LOCKDOWN);
    expect((await a.unary(SecurityService.method.getState, {})).blocks.map((b) => b.entity)).toEqual(['remote_address=203.0.113.7']);
    const { action } = await a.unary(SecurityService.method.requestAction, { change: { case: 'setMode', value: { mode: SecurityMode.NORMAL } } });
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await failure(client(TOKENS.adminB).unary(SecurityService.method.approveAction, { id: action?.id ?? '' }))).toBe(status.FAILED_PRECONDITION);
    expect((await a.unary(SecurityService.method.listActions, { state: ActionState.EXPIRED })).actions.map((x) => x.id)).toEqual([action?.id]);
    expect((await a.unary(SecurityService.method.getState, {})).mode).toBe(SecurityMode.LOCKDOWN);
  });
});
