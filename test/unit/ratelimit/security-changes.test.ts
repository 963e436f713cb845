/**
 * Security changes over the real action book, policy and store (embedded ClickHouse) and the real
 * ingest pipeline, on a fake clock: request, approval by a second admin (stored, applied, audited),
 * rejection, expiry by the sweep, and a failed storage write that changes nothing.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { Severity } from '../../../src/gen/heimdall/v1/events_pb.js';
import { ActionState, SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';
import type { Pipeline } from '../../../src/ingest/pipeline/pipeline.js';
import { createActionBook, type ActionChange } from '../../../src/ratelimit/security-actions.js';
import { createSecurityChanges } from '../../../src/ratelimit/security-changes.js';
import { createSecurityPolicy, type PolicyChange } from '../../../src/ratelimit/security-policy.js';
import { createSecurityShare, type SecurityShare } from '../../../src/ratelimit/security-share.js';
import { createSecurityStore } from '../../../src/ratelimit/security-store.js';
import { StorageNotReady } from '../../../src/storage/errors.js';
import { createStorage, type Storage } from '../../../src/storage/storage.js';
import { EVENTS } from '../../../src/storage/tables.js';
import { haveBinary } from '../../support/binaries.js';
import { useSharedPipeline } from '../../support/pipeline.js';
import { startRedis } from '../../support/redis.js';
import { silentLogger, tempDir } from '../../support/temp.js';
import { sleep, until } from '../../support/wait.js';

const config = validateConfig({});
const TTL = config.ratelimit.security.approval_ttl;
const BLOCK: ActionChange = { kind: 'block', entity: 'user=mallory', reason: '', durationSeconds: 60 };

/** The changes over `storage` (sharing through `share` if given), with their units, a fake clock, their metrics and a count of onChange calls. */
function changesOver(storage: Storage, pipeline: Pipeline, share?: SecurityShare) {
  const clock = { t: Date.now() };
  const now = () => clock.t;
  const book = createActionBook({ ttlMs: TTL, now });
  const policy = createSecurityPolicy({ config: config.ratelimit.security, now });
  const store = createSecurityStore({ storage });
  const metrics = new Registry();
  const seen = { changes: 0 };
  const changes = createSecurityChanges({ book, policy, store, share, pipeline, onChange: () => (seen.changes += 1), now, metrics, logger: silentLogger() });
  return { clock, book, policy, store, metrics, seen, changes };
}

describe('security changes', () => {
  const env = useSharedPipeline();

  /** The audit events of action `id`, oldest first, once `count` of them are stored. */
  const audits = (id: string, count: number) =>
    until(
      async () => {
        const rows = await env.db.storage.transport.query<{ EventType: string; Severity: number; Category: string; ActorId: string; Message: string }>(
          `SELECT EventType, Severity, Category, ActorId, Message FROM ${EVENTS.name} WHERE JSONExtractString(Payload, 'action') = {id:String} ORDER BY Timestamp`,
          { id },
        );
        return rows.length >= count && rows;
      },
      30_000,
      `${count} audit events of ${id}`,
    );

  it('requests a pending action, then on the approval of a second admin stores, applies and audits its change', async () => {
    const { clock, book, policy, store, metrics, seen, changes } = changesOver(env.db.storage, env.pipeline);
    const requested = await changes.request(BLOCK, 'probing', 'admin-a');
    expect(requested).toMatchObject({ state: ActionState.PENDING, requestedBy: 'admin-a', expiresAt: clock.t + TTL });
    expect(book.list(ActionState.PENDING)).toEqual([requested]);
    expect(policy.blocks()).toEqual([]);
    await expect(changes.approve(requested.id, 'admin-a')).rejects.toThrow(new AgentError('permission_denied', `action ${requested.id} must be approved by an admin other than the one who requested it (admin-a)`));

    clock.t += 5_000;
    const executed = await changes.approve(requested.id, 'admin-b');
    expect(executed).toMatchObject({ id: requested.id, state: ActionState.EXECUTED, decidedBy: 'admin-b', decidedAt: clock.t });
    const block = { entity: 'user=mallory', reason: 'probing', expiresAt: clock.t + 60_000, createdAt: clock.t, requestedBy: 'admin-a', approvedBy: 'admin-b' };
    expect(policy.blocks()).toEqual([block]);
    expect(policy.check([{ key: 'user', value: 'mallory' }])).toEqual({ refuse: true, reason: 'blocked' });
    expect(await store.load()).toMatchObject({ blocks: [block], actions: [executed] });
    expect(seen.changes).toBeGreaterThanOrEqual(2);
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_security_actions_total{state="pending"} 1');
    expect(text).toContain('heimdall_security_actions_total{state="executed"} 1');
    expect(await audits(requested.id, 2)).toEqual([
      { EventType: 'security.action.requested', Severity: Severity.NOTICE, Category: 'security', ActorId: 'admin-a', Message: 'block user=mallory requested by admin-a: probing' },
      { EventType: 'security.action.executed', Severity: Severity.WARNING, Category: 'security', ActorId: 'admin-b', Message: 'block user=mallory executed by admin-b' },
    ]);
    await expect(changes.approve(requested.id, 'admin-b')).rejects.toThrow(new AgentError('failed_precondition', `action ${requested.id} is executed, not pending`));

    // The block lasts its duration: the sweep drops it once past.
    clock.t += 60_000;
    await changes.sweep();
    expect(policy.blocks()).toEqual([]);
  });

  it("rejects with the decider's reason: stored and audited, nothing applied", async () => {
    const { book, policy, store, changes } = changesOver(env.db.storage, env.pipeline);
    const requested = await changes.request({ kind: 'mode', mode: SecurityMode.LOCKDOWN }, 'incident', 'admin-a');
    const rejected = await changes.reject(requested.id, 'admin-a', 'not now');
    expect(rejected).toMatchObject({ state: ActionState.REJECTED, decidedBy: 'admin-a', reason: 'not now' });
    expect(book.list(ActionState.REJECTED)).toEqual([rejected]);
    expect(policy.mode).toBe(SecurityMode.NORMAL);
    expect((await store.load()).actions).toContainEqual(rejected);
    expect((await audits(requested.id, 2)).map((e) => [e.EventType, e.ActorId, e.Message])).toEqual([
      ['security.action.requested', 'admin-a', 'set mode lockdown requested by admin-a: incident'],
      ['security.action.rejected', 'admin-a', 'set mode lockdown rejected by admin-a'],
    ]);
  });

  it('expires a pending action once its TTL has passed, on the sweep; it can no longer be approved', async () => {
    const { clock, book, policy, store, metrics, changes } = changesOver(env.db.storage, env.pipeline);
    const requested = await changes.request({ kind: 'mode', mode: SecurityMode.ELEVATED }, '', 'admin-a');
    clock.t += TTL - 1;
    await changes.sweep();
    expect(book.list(ActionState.PENDING).map((a) => a.id)).toEqual([requested.id]);
    clock.t += 1;
    await changes.sweep();
    const [expired] = book.list(ActionState.EXPIRED);
    expect(expired).toMatchObject({ id: requested.id, decidedBy: 'heimdall', decidedAt: clock.t });
    expect((await store.load()).actions).toContainEqual(expired);
    await expect(changes.approve(requested.id, 'admin-b')).rejects.toThrow(new AgentError('failed_precondition', `action ${requested.id} is expired, not pending`));
    expect(policy.mode).toBe(SecurityMode.NORMAL);
    expect(await metrics.metrics()).toContain('heimdall_security_actions_total{state="expired"} 1');
    expect((await audits(requested.id, 2)).map((e) => [e.EventType, e.ActorId])).toEqual([
      ['security.action.requested', 'admin-a'],
      ['security.action.expired', 'heimdall'],
    ]);
  });

  it('executes an automatic change at once as the system actor: stored, applied and audited, with no approval', async () => {
    const { clock, book, policy, store, changes } = changesOver(env.db.storage, env.pipeline);
    const a = await changes.automatic({ kind: 'block', entity: 'remote_address=203.0.113.9', reason: 'honeypot wp-login', durationSeconds: 3600 }, 'honeypot wp-login hit');
    expect(a).toMatchObject({ state: ActionState.EXECUTED, requestedBy: 'system', decidedBy: 'system', createdAt: clock.t, decidedAt: clock.t });
    expect(book.list(ActionState.PENDING)).toEqual([]);
    expect(policy.check([{ key: 'remote_address', value: '203.0.113.9' }])).toEqual({ refuse: true, reason: 'blocked' });
    expect((await store.load()).blocks).toContainEqual(expect.objectContaining({ entity: 'remote_address=203.0.113.9', expiresAt: clock.t + 3_600_000, requestedBy: 'system', approvedBy: 'system' }));
    expect((await audits(a?.id ?? '', 1)).map((e) => [e.EventType, e.ActorId, e.Message])).toEqual([
      ['security.action.executed', 'system', 'block remote_address=203.0.113.9 executed by system: honeypot wp-login hit'],
    ]);
    // A rule's block expires by itself.
    clock.t += 3_600_000;
    await changes.sweep();
    expect(policy.blocks()).toEqual([]);
  });

  it('a pinned mode is left alone by automation until an admin sets a mode without pin', async () => {
    const { policy, store, changes } = changesOver(env.db.storage, env.pipeline);
    const pin = await changes.request({ kind: 'mode', mode: SecurityMode.ELEVATED, pin: true }, 'hold it', 'admin-a');
    await changes.approve(pin.id, 'admin-b');
    expect([policy.mode, policy.pinned, policy.modeSetBy]).toEqual([SecurityMode.ELEVATED, true, 'admin-b']);
    expect((await store.load()).mode).toEqual({ mode: SecurityMode.ELEVATED, pinned: true, by: 'admin-b' });
    expect(await changes.automatic({ kind: 'mode', mode: SecurityMode.LOCKDOWN }, 'rule burst')).toBeUndefined();
    expect(policy.mode).toBe(SecurityMode.ELEVATED);
    // Blocks are not modes: automation still blocks while the mode is pinned.
    expect(await changes.automatic({ kind: 'unblock', entity: 'user=nobody' }, 'rule')).toBeDefined();
    const unpin = await changes.request({ kind: 'mode', mode: SecurityMode.ELEVATED }, 'let automation act', 'admin-a');
    await changes.approve(unpin.id, 'admin-b');
    expect(policy.pinned).toBe(false);
    await changes.automatic({ kind: 'mode', mode: SecurityMode.NORMAL }, 'rule quiet');
    expect([policy.mode, policy.modeSetBy]).toEqual([SecurityMode.NORMAL, 'system']);
  });

  it('changes nothing when storage cannot take a write: the request, approval and rejection fail, the sweep leaves the action pending', async () => {
    const dir = tempDir();
    // Storage that is never started: every write is refused as not ready.
    const down = createStorage({ config: validateConfig({ storage: { embedded: { path: dir.path } } }).storage, logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() });
    const { clock, book, policy, metrics, seen, changes } = changesOver(down, env.pipeline);
    const pending = book.propose(BLOCK, 'probing', 'admin-a');
    book.record(pending);
    const notReady = new StorageNotReady('the security state cannot be saved');
    await expect(changes.request({ kind: 'unblock', entity: 'user=eve' }, '', 'admin-a')).rejects.toThrow(notReady);
    await expect(changes.approve(pending.id, 'admin-b')).rejects.toThrow(notReady);
    await expect(changes.reject(pending.id, 'admin-b', 'no')).rejects.toThrow(notReady);
    clock.t += TTL;
    await changes.sweep();
    expect(book.all()).toEqual([pending]);
    expect(policy.blocks()).toEqual([]);
    expect(await metrics.metrics()).not.toMatch(/heimdall_security_actions_total\{/);
    // Only the sweeps reported (nothing changed).
    expect(seen.changes).toBe(3);
    await down.shutdown();
    dir.cleanup();
  });
});

describe.runIf(haveBinary('redis-server'))('security changes shared through a real redis-server', () => {
  const env = useSharedPipeline();

  it('shares a change only once its action is stored and listed: an agent that hears of it can list the action that made it', async () => {
    const redis = await startRedis();
    const section = { url: redis.url, sentinel_name: 'mymaster', key_prefix: 'test:order:' };
    const [mine, theirs] = [createSecurityShare({ redis: section, logger: silentLogger() }), createSecurityShare({ redis: section, logger: silentLogger() })];
    try {
      const { book, store, changes } = changesOver(env.db.storage, env.pipeline, mine);
      const heard: Array<{ change: PolicyChange; listed: string[]; stored: string[] }> = [];
      theirs.subscribe((change) => {
        const listed = book.list(ActionState.EXECUTED).map((a) => a.id);
        // What storage holds at the moment the change is heard.
        void store.load().then((s) => heard.push({ change, listed, stored: s.actions.map((a) => a.id) }));
      });
      await sleep(500); // the subscription is in place
      const a = await changes.automatic({ kind: 'mode', mode: SecurityMode.ELEVATED }, 'rule burst');
      await until(() => heard.length > 0, 15_000, 'the shared change');
      expect(heard[0]).toEqual({ change: expect.objectContaining({ kind: 'mode', mode: SecurityMode.ELEVATED }), listed: [a?.id], stored: expect.arrayContaining([a?.id]) });
    } finally {
      mine.shutdown();
      theirs.shutdown();
      await redis.stop();
    }
  });
});
