/** Hit counts handed to prom-client counters when collected: the same series, values and order as incrementing at once. */
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHitCounts } from '../../../src/ratelimit/hit-counts.js';
import { prng } from '../../support/prng.js';

/** Two registries fed the same random increments: one directly, one through the hit counts. */
function pair() {
  const direct = new Registry();
  const deferred = new Registry();
  const names = ['a_total', 'b_total', 'c_total'];
  const plain = names.map((name) => new Counter({ name, help: name, labelNames: ['k'], registers: [direct] }));
  const counts = createHitCounts(() => counters);
  const counters = names.map((name) => new Counter({ name, help: name, labelNames: ['k'], registers: [deferred], collect: counts.flush }));
  return { direct, deferred, plain, counts };
}

describe('hit counts', () => {
  it('show what direct increments show, in the same order, zeros included, across several scrapes', async () => {
    const { direct, deferred, plain, counts } = pair();
    const rnd = prng(7);
    const labels = Array.from({ length: 6 }, (_v, i) => ({ k: `v${i}` }));
    const slots = labels.map((l) => counts.slot(l));
    for (let scrape = 0; scrape < 4; scrape++) {
      for (let i = 0; i < 200; i++) {
        const s = Math.floor(rnd() * labels.length);
        const c = Math.floor(rnd() * 3);
        const n = Math.floor(rnd() * 3); // 0 included: inc(0) makes a series appear
        plain[c]?.inc(labels[s] as { k: string }, n);
        counts.add(slots[s] as ReturnType<typeof counts.slot>, c, n);
      }
      expect(await deferred.metrics()).toBe(await direct.metrics());
    }
  });

  it('make nothing visible before a collection, and everything after a read of one counter', async () => {
    const { deferred, counts } = pair();
    const slot = counts.slot({ k: 'x' });
    counts.add(slot, 2, 5);
    expect((await deferred.getSingleMetric('c_total')?.get())?.values).toEqual([{ labels: { k: 'x' }, value: 5 }]);
    expect((await deferred.getSingleMetric('a_total')?.get())?.values).toEqual([]);
  });
});
