import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';
import { createHoneypotOverlay } from '../../../src/ratelimit/honeypot-overlay.js';
import { createSecurityReplica } from '../../../src/ratelimit/security-replica.js';

describe('security replica', () => {
  it('answers from the last snapshot: mode, elevated factor, blocks with their expiry, lockdown allow list', () => {
    const config = validateConfig({ ratelimit: { security: { elevated_factor: 0.25, lockdown_allow: ['health=probe'] } } }).ratelimit.security;
    const replica = createSecurityReplica(config, { mode: SecurityMode.NORMAL, blocks: [] });
    const ip = [{ key: 'ip', value: '1.2.3.4' }];
    expect(replica.check(ip)).toEqual({ refuse: false, factor: 1 });
    const block = { entity: 'ip=1.2.3.4', reason: 'x', expiresAt: 0, createdAt: 1, requestedBy: 'a', approvedBy: 'b' };
    replica.replace({ mode: SecurityMode.ELEVATED, blocks: [block, { ...block, entity: 'ip=5.6.7.8', expiresAt: Date.now() - 1 }] });
    expect(replica.check(ip)).toEqual({ refuse: true, reason: 'blocked' });
    expect(replica.check([{ key: 'ip', value: '5.6.7.8' }])).toEqual({ refuse: false, factor: 0.25 });
    // A snapshot replaces the whole state: the block lifted, lockdown on.
    replica.replace({ mode: SecurityMode.LOCKDOWN, blocks: [] });
    expect(replica.check(ip)).toEqual({ refuse: true, reason: 'lockdown' });
    expect(replica.check([{ key: 'health', value: 'probe' }])).toEqual({ refuse: false, factor: 1 });
  });

  it("refuses what its honeypot overlay blocks until a snapshot acknowledges the report: then the snapshot's blocks are the truth (an unblock lifts it)", () => {
    const config = validateConfig({}).ratelimit.security;
    const overlay = createHoneypotOverlay();
    const replica = createSecurityReplica(config, { mode: SecurityMode.NORMAL, blocks: [], hits: { acked: 0, failed: [] } }, overlay);
    const ip = [{ key: 'ip', value: '1.2.3.4' }];
    overlay.block(['ip=1.2.3.4'], Date.now() + 60_000, 1);
    expect(replica.check(ip)).toEqual({ refuse: true, reason: 'blocked' });
    expect(replica.blocked(ip[0]!)).toBe(false); // the main thread's blocks do not hold it yet
    const block = { entity: 'ip=1.2.3.4', reason: 'honeypot env', expiresAt: Date.now() + 60_000, createdAt: 1, requestedBy: 'system', approvedBy: 'system' };
    // The block's own snapshot arrives before the acknowledgement: still blocked, by both.
    replica.replace({ mode: SecurityMode.NORMAL, blocks: [block], hits: { acked: 0, failed: [] } });
    replica.replace({ mode: SecurityMode.NORMAL, blocks: [block], hits: { acked: 1, failed: [] } });
    expect([overlay.size, replica.blocked(ip[0]!), replica.check(ip).refuse]).toEqual([0, true, true]);
    // An admin's unblock: nothing holds it any more.
    replica.replace({ mode: SecurityMode.NORMAL, blocks: [], hits: { acked: 1, failed: [] } });
    expect(replica.check(ip)).toEqual({ refuse: false, factor: 1 });
  });
});
