/** The mode and block list alone, on a fake clock: verdicts, block expiry, mode switches. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';
import { createSecurityPolicy, type BlockRecord } from '../../../src/ratelimit/security-policy.js';

const defaults = validateConfig({}).ratelimit.security;

function policy(config: Partial<typeof defaults> = {}) {
  const clock = { t: 1_700_000_000_000 };
  return { clock, policy: createSecurityPolicy({ config: { ...defaults, ...config }, now: () => clock.t }) };
}

const block = (entity: string, expiresAt = 0): BlockRecord => ({ entity, reason: 'r', expiresAt, createdAt: 1, requestedBy: 'a', approvedBy: 'b' });
const entries = (...pairs: string[]) => pairs.map((p) => ({ key: p.split('=')[0]!, value: p.split('=')[1]! }));

describe('the security policy', () => {
  it('starts in the configured mode and answers each mode with its verdict', () => {
    const { policy: p } = policy({ mode: 'elevated', elevated_factor: 0.25, lockdown_allow: ['health=probe'] });
    expect(p.mode).toBe(SecurityMode.ELEVATED);
    expect(p.check(entries('user=alice'))).toEqual({ refuse: false, factor: 0.25 });
    expect(p.apply({ kind: 'mode', mode: SecurityMode.LOCKDOWN })).toBe(SecurityMode.ELEVATED);
    expect(p.apply({ kind: 'mode', mode: SecurityMode.LOCKDOWN })).toBeUndefined();
    expect(p.check(entries('user=alice'))).toEqual({ refuse: true, reason: 'lockdown' });
    expect(p.check(entries('user=alice', 'health=probe'))).toEqual({ refuse: false, factor: 1 });
    p.apply({ kind: 'mode', mode: SecurityMode.NORMAL });
    expect(p.check(entries('user=alice'))).toEqual({ refuse: false, factor: 1 });
  });

  it('refuses a blocked entity in any mode, even one on the allow list, until unblocked', () => {
    const { policy: p } = policy({ mode: 'lockdown', lockdown_allow: ['health=probe'] });
    p.apply({ kind: 'block', block: block('health=probe') });
    expect(p.check(entries('health=probe'))).toEqual({ refuse: true, reason: 'blocked' });
    expect(p.blocks()).toEqual([block('health=probe')]);
    p.apply({ kind: 'unblock', entity: 'health=probe' });
    expect(p.check(entries('health=probe'))).toEqual({ refuse: false, factor: 1 });
    expect(p.blocks()).toEqual([]);
  });

  it('stops refusing a block at its expiry, and drops it when swept', () => {
    const { clock, policy: p } = policy();
    p.apply({ kind: 'block', block: block('user=mallory', clock.t + 1_000) });
    p.apply({ kind: 'block', block: block('user=eve') });
    clock.t += 999;
    p.dropExpired();
    expect(p.check(entries('user=mallory'))).toEqual({ refuse: true, reason: 'blocked' });
    clock.t += 1;
    expect(p.check(entries('user=mallory'))).toEqual({ refuse: false, factor: 1 });
    expect(p.blocks().map((b) => b.entity)).toEqual(['user=mallory', 'user=eve']);
    p.dropExpired();
    expect(p.blocks().map((b) => b.entity)).toEqual(['user=eve']);
  });
});
