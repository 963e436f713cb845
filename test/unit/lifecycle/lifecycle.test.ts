import { describe, expect, it } from 'vitest';
import { createLifecycle, type Component } from '../../../src/lifecycle/lifecycle.js';
import { silentLogger } from '../../support/temp.js';

/** A component that records its calls in `log` (and the grace each shutdown got in `graces`). */
function component(name: string, log: string[], graces: Record<string, number>, behaviour: { failStart?: boolean; failStop?: boolean; startGate?: Promise<void> } = {}): Component {
  return {
    name,
    async start() {
      log.push(`start ${name}`);
      await behaviour.startGate;
      if (behaviour.failStart) throw new Error(`${name} cannot start`);
    },
    async shutdown(graceMs) {
      log.push(`stop ${name}`);
      graces[name] = graceMs ?? -1;
      if (behaviour.failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

const config = { drain: 0, timeout: 10_000 };

describe('lifecycle', () => {
  it('starts in order and shuts down in reverse, each within the shutdown deadline; a failing shutdown does not stop the others; twice is once', async () => {
    const log: string[] = [];
    const graces: Record<string, number> = {};
    let begun = 0;
    const lifecycle = createLifecycle({
      components: [component('a', log, graces), component('b', log, graces, { failStop: true }), component('c', log, graces)],
      config,
      beginShutdown: () => void (begun += 1),
      logger: silentLogger(),
    });
    expect(await lifecycle.start()).toBe(true);
    await Promise.all([lifecycle.shutdown(), lifecycle.shutdown()]);
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(begun).toBe(1);
    // Each gets what is left of the deadline (timeout - 500 ms) minus 250 ms for each one after it.
    expect(graces.c).toBeLessThanOrEqual(10_000 - 500 - 2 * 250);
    expect(graces.c).toBeGreaterThan(8_000);
    expect(graces.a).toBeLessThanOrEqual(10_000 - 500);
    expect(graces.a).toBeGreaterThan(graces.c ?? 0);
  });

  it('on a failed start, stops what started (in reverse) and rethrows; the rest never starts', async () => {
    const log: string[] = [];
    const lifecycle = createLifecycle({
      components: [component('a', log, {}), component('b', log, {}), component('c', log, {}, { failStart: true }), component('d', log, {})],
      config,
      beginShutdown: () => void log.push('begin shutdown'),
      logger: silentLogger(),
    });
    await expect(lifecycle.start()).rejects.toThrow('c cannot start');
    expect(log).toEqual(['start a', 'start b', 'start c', 'begin shutdown', 'stop b', 'stop a']);
  });

  it('a shutdown during start stops the start, and stops what started', async () => {
    const log: string[] = [];
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const lifecycle = createLifecycle({
      components: [component('a', log, {}, { startGate: gate }), component('b', log, {})],
      config: { drain: 50, timeout: 10_000 },
      beginShutdown: () => undefined,
      logger: silentLogger(),
    });
    const starting = lifecycle.start();
    const stopping = lifecycle.shutdown();
    release();
    expect(await starting).toBe(false);
    await stopping;
    // a was starting when the shutdown came: it finishes starting, b never starts, a is stopped after the drain.
    expect(log).toEqual(['start a', 'stop a']);
  });
});
