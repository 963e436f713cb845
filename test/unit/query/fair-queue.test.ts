/** The fair queue alone: whose waiter goes next, per-tenant caps, removal, and tenants forgotten when idle. */
import { describe, expect, it } from 'vitest';
import { createFairQueue } from '../../../src/query/fair-queue.js';

describe('fair queue', () => {
  it('serves the tenant with the fewest running, then the one served least recently', () => {
    const q = createFairQueue<string>();
    const a = q.turns('a');
    const b = q.turns('b');
    for (const w of ['a0', 'a1', 'a2']) q.push('a', a, w);
    q.push('b', b, 'b0');
    q.push('b', b, 'b1');
    const take = (): string | undefined => {
      const n = q.next(10);
      if (n) n.turns.running += 1;
      return n?.waiter;
    };
    // Both idle and never served: a was queued first. Then b has fewer running.
    expect([take(), take()]).toEqual(['a0', 'b0']);
    // Equal running: b was served after a, so a goes next.
    expect(take()).toBe('a1');
    expect(take()).toBe('b1');
    expect(take()).toBe('a2');
    expect(take()).toBeUndefined();
    expect(q.queued).toBe(0);
  });

  it('skips a tenant at its cap and gives the slot to the next', () => {
    const q = createFairQueue<string>();
    const a = q.turns('a');
    a.running = 2;
    q.push('a', a, 'a0');
    expect(q.next(2)).toBeUndefined();
    const b = q.turns('b');
    q.push('b', b, 'b0');
    expect(q.next(2)?.waiter).toBe('b0');
    expect(q.next(3)?.waiter).toBe('a0');
  });

  it('counts waiters for the gauge; a removed waiter never starts, and removing it twice does nothing', () => {
    const counts: number[] = [];
    const q = createFairQueue<string>({ onQueued: (n) => counts.push(n) });
    const a = q.turns('a');
    q.push('a', a, 'a0');
    q.push('a', a, 'a1');
    q.remove('a', a, 'a0');
    q.remove('a', a, 'a0');
    expect(q.next(1)?.waiter).toBe('a1');
    expect(counts).toEqual([1, 2, 1, 0]);
  });

  it('forgets an idle tenant, so its next query starts with a fresh turn; keeps one with a query running', () => {
    const q = createFairQueue<string>();
    const a = q.turns('a');
    q.push('a', a, 'a0');
    const first = q.next(1);
    expect(first?.turns.served).toBe(1);
    a.running = 1;
    q.forget('a', a);
    expect(q.turns('a')).toBe(a);
    a.running = 0;
    q.forget('a', a);
    expect(q.turns('a')).not.toBe(a);
    expect(q.turns('a').served).toBe(0);
  });
});
