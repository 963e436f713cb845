/**
 * The rules engine over the real security changes (action book, policy, store on embedded
 * ClickHouse, audit through the real pipeline), on a fake clock, evaluated by hand: fires at
 * threshold and min_entities, one decision per window, back to normal after quiet, an admin's mode
 * never lowered, a pin respected, block rules, notifications.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../../src/config/load.js';
import { ActionState, SecurityMode } from '../../../../src/gen/heimdall/v1/security_pb.js';
import type { Pipeline } from '../../../../src/ingest/pipeline/pipeline.js';
import type { SecurityNotification } from '../../../../src/notify/notification.js';
import { createAutomation } from '../../../../src/ratelimit/automation/engine.js';
import { createActionBook } from '../../../../src/ratelimit/security-actions.js';
import { createSecurityChanges } from '../../../../src/ratelimit/security-changes.js';
import { createSecurityPolicy, SYSTEM_ACTOR } from '../../../../src/ratelimit/security-policy.js';
import { createSecurityStore } from '../../../../src/ratelimit/security-store.js';
import type { Storage } from '../../../../src/storage/storage.js';
import { useSharedPipeline } from '../../../support/pipeline.js';
import { silentLogger } from '../../../support/temp.js';

const WEBHOOK = { url: 'https://hooks.example.com/heimdall' };
const RULES = [
  { name: 'burst', on: 'refusals', threshold: 10, min_entities: 3, window: '1s', then: 'elevated', quiet: '3s', webhook: WEBHOOK },
  { name: 'traps', on: 'honeypot_hits', threshold: 3, window: '1s', then: 'lockdown', quiet: '2s' },
  { name: 'ban', on: 'incidents', threshold: 2, window: '10s', then: 'block', block_keys: ['remote_address', 'user'], block_ttl: '5s', webhook: WEBHOOK },
];
const config = validateConfig({ ratelimit: { security: { automation: { allow: ['remote_address=10.*'], rules: RULES } } } });

/** An engine over real changes, with a fake clock (on a window bound), its notifications and metrics. */
function engineOver(storage: Storage, pipeline: Pipeline) {
  const clock = { t: 1_800_000_000_000 };
  const now = () => clock.t;
  const policy = createSecurityPolicy({ config: config.ratelimit.security, now });
  const book = createActionBook({ ttlMs: 60_000, now });
  const metrics = new Registry();
  const changes = createSecurityChanges({ book, policy, store: createSecurityStore({ storage }), pipeline, onChange: () => undefined, now, metrics, logger: silentLogger() });
  const notes: SecurityNotification[] = [];
  const automation = createAutomation({ config: config.ratelimit.security.automation, policy, changes, notify: (_w, n) => notes.push(n), now, metrics, logger: silentLogger() });
  const bySystem = () => book.all().filter((a) => a.decidedBy === SYSTEM_ACTOR && a.state === ActionState.EXECUTED);
  const refusals = (count: number, entities: string[]) => automation.signals({ refusals: count, entities, incidents: [] });
  const firings = async () => (await metrics.getSingleMetric('heimdall_security_rule_firings_total')?.get())?.values.map((v) => [v.labels.rule, v.value]);
  return { clock, policy, book, changes, automation, notes, bySystem, refusals, firings };
}

describe('automation rules engine', () => {
  const env = useSharedPipeline();

  it('elevates at threshold refusals from min_entities entities, once per window, and tells the webhook', async () => {
    const e = engineOver(env.db.storage, env.pipeline);
    e.refusals(30, ['remote_address=a', 'remote_address=b']);
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.NORMAL); // 30 refusals, 2 entities
    e.refusals(1, ['remote_address=c']);
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.ELEVATED);
    expect(e.policy.modeSetBy).toBe(SYSTEM_ACTOR);
    const [action] = e.bySystem();
    expect(action).toMatchObject({ change: { kind: 'mode', mode: SecurityMode.ELEVATED }, reason: 'rule burst: 31 refusals from 3 entities within 1s' });
    expect(e.notes).toEqual([expect.objectContaining({ kind: 'mode', rule: 'burst', mode: 'elevated', previous_mode: 'normal', action_id: action?.id, time: new Date(e.clock.t).toISOString() })]);
    e.refusals(100, ['remote_address=d']);
    await e.automation.evaluate();
    e.clock.t += 1_000; // the next window: fires again (holds the mode), nothing to change
    e.refusals(10, ['remote_address=a', 'remote_address=b', 'remote_address=c']);
    await e.automation.evaluate();
    expect(e.bySystem()).toHaveLength(1);
    expect(await e.firings()).toEqual([['burst', 2]]);
  });

  it('goes back to normal once the rules holding the mode have been quiet, and to the mode still held before that', async () => {
    const e = engineOver(env.db.storage, env.pipeline);
    e.refusals(10, ['remote_address=a', 'remote_address=b', 'remote_address=c']);
    e.automation.honeypotHits(3, ['remote_address=t']);
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.LOCKDOWN);
    e.clock.t += 1_999;
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.LOCKDOWN);
    e.clock.t += 1; // traps quiet for 2 s; burst (3 s) still holds elevated
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.ELEVATED);
    e.clock.t += 999;
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.ELEVATED);
    e.clock.t += 1;
    await e.automation.evaluate();
    expect(e.policy.mode).toBe(SecurityMode.NORMAL);
    expect(e.bySystem().map((a) => a.change)).toEqual([
      { kind: 'mode', mode: SecurityMode.ELEVATED },
      { kind: 'mode', mode: SecurityMode.LOCKDOWN },
      { kind: 'mode', mode: SecurityMode.ELEVATED },
      { kind: 'mode', mode: SecurityMode.NORMAL },
    ]);
    expect(e.notes.map((n) => [n.rule, n.mode, n.previous_mode])).toEqual([
      ['burst', 'elevated', 'normal'],
      ['burst', 'normal', 'elevated'],
    ]);
    await e.automation.evaluate();
    expect(e.bySystem()).toHaveLength(4);
  });

  it("never lowers a mode an admin set, but raises it; a pinned mode is left alone", async () => {
    const e = engineOver(env.db.storage, env.pipeline);
    const admin = await e.changes.request({ kind: 'mode', mode: SecurityMode.ELEVATED }, 'incident', 'admin-a');
    await e.changes.approve(admin.id, 'admin-b');
    e.clock.t += 60_000;
    await e.automation.evaluate();
    expect([e.policy.mode, e.policy.modeSetBy]).toEqual([SecurityMode.ELEVATED, 'admin-b']);
    e.refusals(10, ['remote_address=a', 'remote_address=b', 'remote_address=c']); // burst: elevated already
    await e.automation.evaluate();
    expect(e.bySystem()).toHaveLength(0);
    e.automation.honeypotHits(3, ['remote_address=t']);
    await e.automation.evaluate();
    expect([e.policy.mode, e.policy.modeSetBy]).toEqual([SecurityMode.LOCKDOWN, SYSTEM_ACTOR]);

    const pin = await e.changes.request({ kind: 'mode', mode: SecurityMode.NORMAL, pin: true }, 'hands off', 'admin-a');
    await e.changes.approve(pin.id, 'admin-b');
    e.clock.t += 10_000;
    e.automation.honeypotHits(30, ['remote_address=t']);
    e.refusals(30, ['remote_address=a', 'remote_address=b', 'remote_address=c']);
    await e.automation.evaluate();
    expect([e.policy.mode, e.policy.pinned]).toEqual([SecurityMode.NORMAL, true]);
    expect(e.bySystem()).toHaveLength(1);
  });

  it("blocks an incident's entries under block_keys (minus allow) once its entity reaches threshold, for block_ttl", async () => {
    const e = engineOver(env.db.storage, env.pipeline);
    const incident = (entity: string, entries: Array<{ key: string; value: string }>) => ({ domain: 'edge', descriptor: 'edge.x', entity, entries });
    const mallory = incident('remote_address=203.0.113.9,user=mallory,path=/x', [
      { key: 'remote_address', value: '203.0.113.9' },
      { key: 'user', value: 'mallory' },
      { key: 'path', value: '/x' },
    ]);
    const inside = incident('remote_address=10.1.2.3,user=eve', [
      { key: 'remote_address', value: '10.1.2.3' },
      { key: 'user', value: 'eve' },
    ]);
    e.automation.signals({ refusals: 0, entities: [], incidents: [mallory, inside] });
    await e.automation.evaluate();
    expect(e.policy.blocks()).toEqual([]); // one incident each, threshold 2
    e.clock.t += 1_000;
    e.automation.signals({ refusals: 0, entities: [], incidents: [mallory, inside] });
    await e.automation.evaluate();
    const t = e.clock.t;
    expect(e.policy.blocks().map((b) => [b.entity, b.expiresAt, b.requestedBy])).toEqual([
      ['remote_address=203.0.113.9', t + 5_000, SYSTEM_ACTOR],
      ['user=mallory', t + 5_000, SYSTEM_ACTOR],
      ['user=eve', t + 5_000, SYSTEM_ACTOR],
    ]);
    expect(e.notes.filter((n) => n.kind === 'block').map((n) => [n.entity, n.expires_at])).toEqual([
      ['remote_address=203.0.113.9', new Date(t + 5_000).toISOString()],
      ['user=mallory', new Date(t + 5_000).toISOString()],
      ['user=eve', new Date(t + 5_000).toISOString()],
    ]);
    e.automation.signals({ refusals: 0, entities: [], incidents: [mallory, mallory] });
    await e.automation.evaluate();
    expect(e.bySystem()).toHaveLength(3); // one decision per entity and window
    e.clock.t += 5_000;
    await e.changes.sweep();
    expect(e.policy.blocks()).toEqual([]);
    expect(await e.firings()).toEqual([['ban', 2]]);
  });
});
