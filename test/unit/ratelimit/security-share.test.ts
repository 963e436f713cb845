/** Security changes shared through a real redis-server: kept for agents that start later, published to those running. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';
import type { PolicyChange } from '../../../src/ratelimit/security-policy.js';
import { createSecurityShare, type SecurityShare } from '../../../src/ratelimit/security-share.js';
import { haveBinary } from '../../support/binaries.js';
import { freePort, startRedis, type TestRedis } from '../../support/redis.js';
import { silentLogger } from '../../support/temp.js';
import { until } from '../../support/wait.js';

const section = (url: string, key_prefix = 'test:rl:') => ({ url, sentinel_name: 'mymaster', key_prefix });
const blockOf = (entity: string): PolicyChange => ({ kind: 'block', block: { entity, reason: 'r', expiresAt: 0, createdAt: 1, requestedBy: 'a', approvedBy: 'b' } });

describe.runIf(haveBinary('redis-server'))('security changes shared through Redis', () => {
  let redis: TestRedis;
  const shares: SecurityShare[] = [];
  const share = (prefix?: string) => {
    const s = createSecurityShare({ redis: section(redis.url, prefix), logger: silentLogger() });
    shares.push(s);
    return s;
  };
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const s of shares) s.shutdown();
    await redis.stop();
  });

  it('publishes each change to the agents subscribed, and keeps the latest mode and the blocks for agents starting later', async () => {
    const a = share();
    const b = share();
    const seen: PolicyChange[] = [];
    b.subscribe((c) => seen.push(c));
    // The subscription is in place once a published change arrives.
    await until(async () => (await a.share({ kind: 'mode', mode: SecurityMode.ELEVATED }), seen.length > 0), 15_000, 'the subscription');
    seen.length = 0;
    await a.share(blockOf('user=mallory'));
    await a.share(blockOf('user=eve'));
    await a.share({ kind: 'unblock', entity: 'user=eve' });
    await a.share({ kind: 'mode', mode: SecurityMode.LOCKDOWN });
    await until(() => seen.at(-1)?.kind === 'mode' && (seen.at(-1) as { mode: SecurityMode }).mode === SecurityMode.LOCKDOWN, 15_000, 'the last change');
    // Probes of the subscription may still arrive after it was seen in place.
    expect(seen.filter((c) => !(c.kind === 'mode' && c.mode === SecurityMode.ELEVATED))).toEqual([blockOf('user=mallory'), blockOf('user=eve'), { kind: 'unblock', entity: 'user=eve' }, { kind: 'mode', mode: SecurityMode.LOCKDOWN }]);
    // A client just made loads nothing until it has connected (no offline queue).
    const fresh = share();
    const later = await until(async () => {
      const l = await fresh.load();
      return l.length > 0 && l;
    }, 15_000, 'the shared state');
    expect(later).toHaveLength(2);
    expect(later).toEqual(expect.arrayContaining([{ kind: 'mode', mode: SecurityMode.LOCKDOWN }, blockOf('user=mallory')]));
    // Another key prefix is another set of agents.
    const other = share('other:');
    await until(async () => (await other.load(), true), 15_000, 'a load');
    expect(await other.load()).toEqual([]);
  });

  it('forgets expired blocks: they leave the hash, the rest stays', async () => {
    const a = share('forget:');
    // Connected once a shared change is there to load (no offline queue).
    await until(async () => (await a.share(blockOf('user=live')), (await a.load()).length > 0), 15_000, 'a connected client');
    for (const e of ['user=old1', 'user=old2']) await a.share(blockOf(e));
    await a.share({ kind: 'mode', mode: SecurityMode.ELEVATED });
    await a.forget(['user=old1', 'user=old2']);
    expect(await a.load()).toEqual(expect.arrayContaining([blockOf('user=live'), { kind: 'mode', mode: SecurityMode.ELEVATED }]));
    expect(await a.load()).toHaveLength(2);
  });

  it('neither throws nor loads anything while Redis is away', async () => {
    const away = createSecurityShare({ redis: section(`redis://127.0.0.1:${await freePort()}`), logger: silentLogger() });
    shares.push(away);
    await away.share(blockOf('user=mallory'));
    expect(await away.load()).toEqual([]);
  });
});
