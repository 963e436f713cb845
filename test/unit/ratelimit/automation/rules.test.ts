/** The rules engine's pure steps, the tick collector and the in-memory store (fake clock): windows, firing, held modes, block targets, bounds. */
import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../../src/config/automation.js';
import { validateConfig } from '../../../../src/config/load.js';
import { SecurityMode } from '../../../../src/gen/heimdall/v1/security_pb.js';
import { blockTargets, fires, heldMode, isModeRule, signalsOf, windowOf, type ModeRule } from '../../../../src/ratelimit/automation/rules.js';
import { createMemoryStore, MAX_MEMORY_KEYS } from '../../../../src/ratelimit/automation/store.js';
import { createTickCollector } from '../../../../src/ratelimit/automation/tick.js';
import { shown } from '../../../../src/ratelimit/keys.js';

const rulesOf = (rules: unknown[]) => validateConfig({ ratelimit: { security: { automation: { rules } } } }).ratelimit.security.automation.rules;
const [burst, storm, block] = rulesOf([
  { name: 'burst', on: 'refusals', threshold: 10, min_entities: 3, window: '1s', then: 'elevated' },
  { name: 'storm', on: 'honeypot_hits', threshold: 5, window: '1m', then: 'lockdown' },
  { name: 'ban', on: 'incidents', threshold: 2, then: 'block', block_keys: ['remote_address', 'user'] },
]) as [ModeRule, ModeRule, RuleConfig];

describe('rule evaluation', () => {
  it('numbers windows from the epoch, so every agent agrees on their bounds', () => {
    expect(windowOf(1_700_000_000_999, 1000)).toBe(1_700_000_000);
    expect(windowOf(1_700_000_001_000, 1000)).toBe(1_700_000_001);
    expect(windowOf(59_999, 60_000)).toBe(0);
  });

  it('fires at threshold signals from min_entities entities; block rules need no entities', () => {
    expect(fires(burst, { count: 9, entities: 5 })).toBe(false);
    expect(fires(burst, { count: 10, entities: 2 })).toBe(false);
    expect(fires(burst, { count: 10, entities: 3 })).toBe(true);
    expect(fires(block, { count: 2, entities: 0 })).toBe(true);
    expect(fires(block, { count: 1, entities: 0 })).toBe(false);
  });

  it('counts for each mode rule the signals it is on', () => {
    const tick = createTickCollector();
    tick.signals({ refusals: 7, entities: ['remote_address=a'], incidents: [] });
    tick.honeypotHits(3, ['remote_address=b']);
    const t = tick.take();
    expect(signalsOf(burst, t)).toEqual({ count: 7, entities: ['remote_address=a'] });
    expect(signalsOf(storm, t)).toEqual({ count: 3, entities: ['remote_address=b'] });
    expect(isModeRule(block)).toBe(false);
    expect(tick.take().refusals).toEqual({ count: 0, entities: [] });
  });

  it('keeps the highest mode a held rule switches to, else normal', () => {
    expect(heldMode([burst, storm], [false, false])).toBe(SecurityMode.NORMAL);
    expect(heldMode([burst, storm], [true, false])).toBe(SecurityMode.ELEVATED);
    expect(heldMode([burst, storm], [true, true])).toBe(SecurityMode.LOCKDOWN);
  });

  it("blocks an incident's entries under block_keys, minus the allow list, shortened or long values and those blocked already", () => {
    const entries = [
      { key: 'remote_address', value: '203.0.113.9' },
      { key: 'user', value: 'bob' },
      { key: 'path', value: '/admin' },
      { key: 'user', value: 'bob' },
    ];
    expect(blockTargets(block, entries, [], new Set())).toEqual(['remote_address=203.0.113.9', 'user=bob']);
    expect(blockTargets(block, entries, ['remote_address=203.0.113.*'], new Set())).toEqual(['user=bob']);
    expect(blockTargets(block, entries, [], new Set(['user=bob']))).toEqual(['remote_address=203.0.113.9']);
    expect(blockTargets(block, [{ key: 'user', value: shown('x'.repeat(100)) }], [], new Set())).toEqual([]);
    expect(blockTargets(block, [{ key: 'user', value: 'y'.repeat(1025) }], [], new Set())).toEqual([]);
    expect(blockTargets(block, [{ key: 'user', value: 'y'.repeat(1024) }], [], new Set())).toHaveLength(1);
  });
});

describe('tick collector', () => {
  it('adds counts up and keeps at most 1,000 distinct entities and incident entities per tick', () => {
    const tick = createTickCollector();
    const many = Array.from({ length: 1_500 }, (_, i) => `remote_address=10.0.${i >> 8}.${i & 255}`);
    tick.signals({ refusals: 1_500, entities: many, incidents: many.map((entity) => ({ domain: 'd', descriptor: 'd.x', entity, entries: [] })) });
    tick.signals({ refusals: 2, entities: ['remote_address=other'], incidents: [{ domain: 'd', descriptor: 'd.x', entity: many[0] ?? '', entries: [] }] });
    tick.honeypotHits(2_000, many);
    const t = tick.take();
    expect(t.refusals.count).toBe(1_502);
    expect(t.refusals.entities).toHaveLength(1_000);
    expect(t.incidents.count).toBe(1_501);
    expect(t.incidents.entities).toHaveLength(1_000);
    expect(t.byEntity.size).toBe(1_000);
    expect(t.byEntity.get(many[0] ?? '')?.count).toBe(2);
    expect(t.honeypotHits).toMatchObject({ count: 2_000 });
    expect(t.honeypotHits.entities).toHaveLength(1_000);
  });
});

describe('in-memory store', () => {
  it('adds to windows, claims once, holds for a while, and drops what is past its time', async () => {
    const clock = { t: 1_000_000 };
    const store = createMemoryStore(() => clock.t);
    expect(await store.add([{ key: 'w', count: 3, entities: ['a', 'b'], ttlMs: 2_000 }])).toEqual([{ count: 3, entities: 2 }]);
    expect(await store.add([{ key: 'w', count: 2, entities: ['b', 'c'], ttlMs: 2_000 }, { key: 'v', count: 1, entities: [], ttlMs: 2_000 }])).toEqual([{ count: 5, entities: 3 }, { count: 1, entities: 0 }]);
    expect(await store.claim('c', 1_000)).toBe(true);
    expect(await store.claim('c', 1_000)).toBe(false);
    await store.hold('h', 1_500);
    expect(await store.held(['h', 'x'])).toEqual([true, false]);
    clock.t += 1_500;
    expect(await store.held(['h'])).toEqual([false]);
    expect(await store.claim('c', 1_000)).toBe(true);
    clock.t += 2_000;
    expect(await store.add([{ key: 'w', count: 1, entities: [], ttlMs: 2_000 }])).toEqual([{ count: 1, entities: 0 }]);
  });

  it('counts at most 10,000 distinct entities in a window', async () => {
    const store = createMemoryStore(() => 0);
    const entities = Array.from({ length: 12_000 }, (_, i) => `e=${i}`);
    expect(await store.add([{ key: 'w', count: 12_000, entities, ttlMs: 1_000 }])).toEqual([{ count: 12_000, entities: 10_000 }]);
  });
});

describe('in-memory store bounds', () => {
  it('keeps at most 100,000 windows and claims: past that, a window counts one add and a claim is refused', async () => {
    const clock = { t: 0 };
    const store = createMemoryStore(() => clock.t);
    const adds = Array.from({ length: MAX_MEMORY_KEYS }, (_, i) => ({ key: `w${i}`, count: 1, entities: [], ttlMs: 2_000 }));
    await store.add(adds);
    await store.add([{ key: 'over', count: 1, entities: [], ttlMs: 2_000 }]);
    expect(await store.add([{ key: 'over', count: 1, entities: [], ttlMs: 2_000 }])).toEqual([{ count: 1, entities: 0 }]);
    expect(await store.add([{ key: 'w0', count: 1, entities: [], ttlMs: 2_000 }])).toEqual([{ count: 2, entities: 0 }]);
    for (let i = 0; i < MAX_MEMORY_KEYS; i++) await store.hold(`h${i}`, 2_000);
    expect(await store.claim('c', 2_000)).toBe(false);
    clock.t += 2_000; // all past their time: dropped
    expect(await store.claim('c', 2_000)).toBe(true);
    expect(await store.add([{ key: 'over', count: 1, entities: [], ttlMs: 2_000 }, { key: 'over', count: 1, entities: [], ttlMs: 2_000 }])).toEqual([{ count: 1, entities: 0 }, { count: 2, entities: 0 }]);
  });
});
