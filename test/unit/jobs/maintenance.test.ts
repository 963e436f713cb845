/** The jobs component's background work alone, with a fake clock: restore once storage is ready, then heartbeats, resyncs and sweeps. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMaintenance, HEARTBEAT_MS, SWEEP_EVERY, SWEEP_WINDOW_MS } from '../../../src/jobs/maintenance.js';
import { silentLogger } from '../../support/temp.js';

function setup(failRestores = 0) {
  const calls: string[] = [];
  // Storage whose readiness the test sets: whenReady resolves once it is set.
  const waiters: Array<() => void> = [];
  const storage = {
    ready: false,
    setReady() {
      storage.ready = true;
      for (const w of waiters.splice(0)) w();
    },
    whenReady: (signal?: AbortSignal): Promise<boolean> =>
      storage.ready ? Promise.resolve(true) : new Promise<boolean>((resolve) => {
        waiters.push(() => resolve(true));
        signal?.addEventListener('abort', () => resolve(false));
      }),
  };
  let stopped = false;
  let failures = failRestores;
  const m = createMaintenance({
    storage,
    resync: async () => void calls.push('resync'),
    restore: async () => {
      calls.push('restore');
      if (failures-- > 0) throw new Error('storage went away');
    },
    sweep: async (since) => void calls.push(`sweep ${Date.now() - since}`),
    storageDown: () => void calls.push('down'),
    heartbeat: () => void calls.push('heartbeat'),
    count: () => 0,
    stopped: () => stopped,
    logger: silentLogger(),
  });
  return { m, calls, storage, stop: () => (stopped = true) };
}

describe('jobs maintenance with a fake clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => vi.useRealTimers());

  it('waits for storage, retries a failed restore after 2 s, then starts its rounds', async () => {
    const s = setup(1);
    s.m.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(s.calls).toEqual([]);
    s.storage.setReady();
    await vi.advanceTimersByTimeAsync(0);
    expect(s.calls).toEqual(['restore']);
    await vi.advanceTimersByTimeAsync(1_900);
    expect(s.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(s.calls).toEqual(['restore', 'restore']);
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS);
    expect(s.calls.slice(2)).toEqual(['heartbeat', 'resync']);
    s.stop();
    await s.m.shutdown();
  });

  it('each round: a heartbeat, a resync while storage is ready (else storage counts as down), a sweep every sixth round', async () => {
    const s = setup();
    s.storage.ready = true;
    s.m.start();
    await vi.advanceTimersByTimeAsync(0);
    s.calls.length = 0;
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS * SWEEP_EVERY);
    expect(s.calls.filter((c) => c === 'heartbeat')).toHaveLength(SWEEP_EVERY);
    expect(s.calls.filter((c) => c === 'resync')).toHaveLength(SWEEP_EVERY);
    expect(s.calls.filter((c) => c.startsWith('sweep'))).toEqual([`sweep ${SWEEP_WINDOW_MS}`]);
    s.storage.ready = false;
    s.calls.length = 0;
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS);
    expect(s.calls).toEqual(['heartbeat', 'down']);
    s.stop();
    await s.m.shutdown();
    await s.m.shutdown();
    s.calls.length = 0;
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS * 2);
    expect(s.calls).toEqual([]);
  });

  it('does nothing once stopped before storage was ready', async () => {
    const s = setup();
    s.m.start();
    s.stop();
    await vi.advanceTimersByTimeAsync(200);
    await s.m.shutdown();
    s.storage.ready = true;
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS);
    expect(s.calls).toEqual([]);
  });
});
