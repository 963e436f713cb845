/** The worker's own honeypot blocks: held until their end, or until a snapshot acknowledges their report (unless it failed); bounded. */
import { describe, expect, it } from 'vitest';
import { createHoneypotOverlay } from '../../../src/ratelimit/honeypot-overlay.js';

describe('honeypot overlay', () => {
  it('blocks at once, until the block ends', () => {
    let t = 1_000;
    const overlay = createHoneypotOverlay({ now: () => t });
    overlay.block(['ip=1.2.3.4'], 2_000, 1);
    expect(overlay.has('ip=1.2.3.4')).toBe(true);
    expect(overlay.blocks([{ key: 'path', value: '/' }, { key: 'ip', value: '1.2.3.4' }])).toBe(true);
    expect(overlay.blocks([{ key: 'ip', value: '5.6.7.8' }])).toBe(false);
    t = 2_000;
    expect(overlay.has('ip=1.2.3.4')).toBe(false);
    overlay.acknowledge(undefined);
    expect(overlay.size).toBe(0);
  });

  it('ends the blocks of acknowledged reports, except failed ones (kept until they end)', () => {
    let t = 0;
    const overlay = createHoneypotOverlay({ now: () => t });
    overlay.block(['ip=a'], 10_000, 1);
    overlay.block(['ip=b', 'user=b'], 10_000, 2);
    overlay.block(['ip=c'], 10_000, 3);
    overlay.acknowledge({ acked: 0, failed: [] });
    expect(overlay.size).toBe(4);
    overlay.acknowledge({ acked: 2, failed: [2] });
    expect(['ip=a', 'ip=b', 'user=b', 'ip=c'].map((e) => overlay.has(e))).toEqual([false, true, true, true]);
    overlay.acknowledge({ acked: 3, failed: [2] });
    expect(['ip=b', 'ip=c'].map((e) => overlay.has(e))).toEqual([true, false]);
    t = 10_000;
    overlay.acknowledge({ acked: 3, failed: [2] });
    expect(overlay.size).toBe(0);
  });

  it('holds at most `max` entities: expired ones make room, past it new ones are not held', () => {
    let t = 0;
    const overlay = createHoneypotOverlay({ max: 2, now: () => t });
    overlay.block(['ip=a'], 100, 1);
    overlay.block(['ip=b', 'ip=c'], 1_000, 2);
    expect([overlay.size, overlay.has('ip=c')]).toEqual([2, false]);
    t = 100; // ip=a ended: room for one
    overlay.block(['ip=c'], 1_000, 3);
    expect([overlay.size, overlay.has('ip=b'), overlay.has('ip=c')]).toEqual([2, true, true]);
    overlay.block(['ip=d'], 1_000, 4);
    expect([overlay.size, overlay.has('ip=d')]).toEqual([2, false]);
  });
});
