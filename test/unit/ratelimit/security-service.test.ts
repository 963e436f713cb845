/**
 * SecurityService on a real gRPC server over loopback, with real clients and tokens, over the real
 * security units on embedded ClickHouse: request validation answers, the admin scope, decisions and
 * their refusals, and the dashboard's shape.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../src/auth/auth.js';
import { connect, type AgentClient } from '../../../src/cli/client.js';
import { validateConfig } from '../../../src/config/load.js';
import { ActionState, SecurityMode, SecurityService, type RequestActionRequestSchema } from '../../../src/gen/heimdall/v1/security_pb.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createPipeline, type Pipeline } from '../../../src/ingest/pipeline/pipeline.js';
import { createActionBook } from '../../../src/ratelimit/security-actions.js';
import { createSecurityChanges } from '../../../src/ratelimit/security-changes.js';
import { createSecurityPolicy } from '../../../src/ratelimit/security-policy.js';
import { addSecurityService } from '../../../src/ratelimit/security-service.js';
import { createSecurityStore } from '../../../src/ratelimit/security-store.js';
import { createGrpcServer, type GrpcServer } from '../../../src/server/grpc.js';
import { startEmbeddedStorage } from '../../support/embedded-storage.js';
import { silentLogger } from '../../support/temp.js';
import { refused } from '../../support/wait.js';

const TOKENS = { adminA: 'admin-a-token-00000001', adminB: 'admin-b-token-00000001', reader: 'query-token-0000000001' };
const config = validateConfig({
  server: { grpc: { address: '127.0.0.1:0' } },
  auth: {
    enabled: true,
    tokens: [
      { name: 'admin-a', token: TOKENS.adminA, scopes: ['admin'] },
      { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin'] },
      { name: 'reader', token: TOKENS.reader, scopes: ['query'] },
    ],
  },
});

describe('the security service', () => {
  let db: Awaited<ReturnType<typeof startEmbeddedStorage>>;
  let pipeline: Pipeline;
  let grpc: GrpcServer;
  const clients: AgentClient[] = [];
  const client = (token?: string) => {
    const c = connect({ addr: `127.0.0.1:${grpc.port}`, token });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    const logger = silentLogger();
    const metrics = new Registry();
    const health = createHealthRegistry();
    db = await startEmbeddedStorage();
    pipeline = createPipeline({ config: config.ingest, storage: db.storage, logger, metrics, health });
    await pipeline.start();
    const auth = createAuthenticator(config.auth, { logger, health, metrics });
    grpc = createGrpcServer({ config: config.server.grpc, logger, metrics, health, auth });
    const book = createActionBook({ ttlMs: config.ratelimit.security.approval_ttl });
    const policy = createSecurityPolicy({ config: config.ratelimit.security });
    const changes = createSecurityChanges({ book, policy, store: createSecurityStore({ storage: db.storage }), pipeline, onChange: () => undefined, metrics, logger });
    addSecurityService({ services: grpc, changes, policy, book, storage: db.storage, incidentThreshold: config.ratelimit.security.incident_threshold });
    await grpc.start();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await grpc.shutdown();
    await pipeline.shutdown();
    await db.stop();
  });

  /** The status code and message a refused call answers. */
  const answer = async (p: Promise<unknown>) => {
    const err: ServiceError = await refused(p);
    return [err.code, err.details];
  };

  it('answers INVALID_ARGUMENT naming the field of a malformed change, and records nothing', async () => {
    const a = client(TOKENS.adminA);
    const request = (change: MessageInitShape<typeof RequestActionRequestSchema>['change']) => a.unary(SecurityService.method.requestAction, { change, reason: 'r' });
    expect(await answer(request({ case: 'block', value: { entity: 'no equals sign', reason: '', durationSeconds: 0 } }))).toEqual([status.INVALID_ARGUMENT, 'block.entity: expected a descriptor entry key=value, got "no equals sign"']);
    expect(await answer(request({ case: 'unblock', value: { entity: '=value' } }))).toEqual([status.INVALID_ARGUMENT, 'unblock.entity: expected a descriptor entry key=value, got "=value"']);
    expect(await answer(request({ case: 'setMode', value: { mode: SecurityMode.UNSPECIFIED } }))).toEqual([status.INVALID_ARGUMENT, 'set_mode.mode: use normal, elevated or lockdown']);
    expect(await answer(request({ case: 'setMode', value: { mode: 7 as SecurityMode } }))).toEqual([status.INVALID_ARGUMENT, 'set_mode.mode: use normal, elevated or lockdown']);
    expect(await answer(request({ case: undefined }))).toEqual([status.INVALID_ARGUMENT, 'change: give block, unblock or set_mode']);
    expect((await a.unary(SecurityService.method.listActions, {})).actions).toEqual([]);
  });

  it('needs a token with the admin scope', async () => {
    expect((await refused(client().unary(SecurityService.method.getState, {}))).code).toBe(status.UNAUTHENTICATED);
    expect((await refused(client(TOKENS.reader).unary(SecurityService.method.getState, {}))).code).toBe(status.PERMISSION_DENIED);
  });

  it('executes an action approved by a second admin, and refuses every other decision with its reason', async () => {
    const a = client(TOKENS.adminA);
    const b = client(TOKENS.adminB);
    const { action } = await a.unary(SecurityService.method.requestAction, { change: { case: 'block', value: { entity: 'user=mallory', reason: 'scanner', durationSeconds: 0 } }, reason: 'probing' });
    const id = action?.id ?? '';
    expect(action).toMatchObject({ state: ActionState.PENDING, requestedBy: 'admin-a', reason: 'probing' });
    expect((await a.unary(SecurityService.method.getState, {})).pendingActions).toBe(1);
    expect(await answer(b.unary(SecurityService.method.approveAction, { id: 'nope' }))).toEqual([status.NOT_FOUND, 'id: no action "nope"']);
    expect(await answer(a.unary(SecurityService.method.approveAction, { id }))).toEqual([status.PERMISSION_DENIED, `action ${id} must be approved by an admin other than the one who requested it (admin-a)`]);
    const approved = await b.unary(SecurityService.method.approveAction, { id });
    expect(approved.action).toMatchObject({ id, state: ActionState.EXECUTED, requestedBy: 'admin-a', decidedBy: 'admin-b' });
    expect(await answer(b.unary(SecurityService.method.rejectAction, { id, reason: 'late' }))).toEqual([status.FAILED_PRECONDITION, `action ${id} is executed, not pending`]);
    const state = await a.unary(SecurityService.method.getState, {});
    expect(state.mode).toBe(SecurityMode.NORMAL);
    expect(state.pendingActions).toBe(0);
    expect(state.blocks.map((bl) => [bl.entity, bl.reason, bl.requestedBy, bl.approvedBy, bl.expiresAt])).toEqual([['user=mallory', 'scanner', 'admin-a', 'admin-b', undefined]]);

    const { action: unblock } = await b.unary(SecurityService.method.requestAction, { change: { case: 'unblock', value: { entity: 'user=mallory' } }, reason: '' });
    const rejected = await a.unary(SecurityService.method.rejectAction, { id: unblock?.id ?? '', reason: 'keep it' });
    expect(rejected.action).toMatchObject({ state: ActionState.REJECTED, requestedBy: 'admin-b', decidedBy: 'admin-a', reason: 'keep it' });
    expect((await a.unary(SecurityService.method.listActions, { state: ActionState.REJECTED })).actions.map((x) => x.id)).toEqual([unblock?.id]);
    expect((await a.unary(SecurityService.method.listActions, {})).actions.map((x) => x.id)).toEqual([unblock?.id, id]);
    // A limit: the newest first, and whether more matched; past 1000 it is refused naming the field.
    const one = await a.unary(SecurityService.method.listActions, { limit: 1 });
    expect([one.actions.map((x) => x.id), one.truncated]).toEqual([[unblock?.id], true]);
    expect((await a.unary(SecurityService.method.listActions, { limit: 2 })).truncated).toBe(false);
    expect(await answer(a.unary(SecurityService.method.listActions, { limit: 1001 }))).toEqual([status.INVALID_ARGUMENT, 'limit: at most 1000, got 1001']);
  });

  it('answers the dashboard with the state and the last hour by default', async () => {
    const a = client(TOKENS.adminA);
    const { action } = await a.unary(SecurityService.method.requestAction, { change: { case: 'setMode', value: { mode: SecurityMode.ELEVATED } }, reason: 'incident' });
    const d = await a.unary(SecurityService.method.getDashboard, {});
    expect(Number((d.endTime?.seconds ?? 0n) - (d.startTime?.seconds ?? 0n))).toBe(3600);
    expect(d.mode).toBe(SecurityMode.NORMAL);
    expect(d.blocks.map((b) => b.entity)).toEqual(['user=mallory']);
    expect(d.pendingActions.map((x) => x.id)).toEqual([action?.id]);
    expect([d.overLimit, d.topEntities, d.incidents]).toEqual([[], [], []]);
  });
});
