/** The run history's write-behind buffer alone: newest state per run, flushes that never lose a newer state, bounds, background flush. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createHistoryBuffer } from '../../../src/jobs/history-buffer.js';
import { silentLogger } from '../../support/temp.js';

interface State {
  id: string;
  status: string;
}

/** An insert the test answers: each call waits until the test settles it. */
function storageSeam() {
  const batches: Array<{ runs: State[]; ok: () => void; fail: (e: Error) => void }> = [];
  const insert = (runs: State[]): Promise<void> => new Promise((ok, fail) => batches.push({ runs: runs.map((r) => ({ ...r })), ok, fail }));
  return { insert, batches };
}
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('history buffer', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps the newest state of each run; a flush stores it, and a state saved during the insert stays waiting', async () => {
    const { insert, batches } = storageSeam();
    const b = createHistoryBuffer<State>({ insert, ready: () => true, logger: silentLogger() });
    b.save({ id: 'r1', status: 'pending' });
    b.save({ id: 'r1', status: 'running' });
    b.save({ id: 'r2', status: 'pending' });
    const first = b.flush();
    await settle();
    expect(batches[0]?.runs).toEqual([{ id: 'r1', status: 'running' }, { id: 'r2', status: 'pending' }]);
    b.save({ id: 'r1', status: 'succeeded' });
    batches[0]?.ok();
    await first;
    expect(b.waiting('r1')).toEqual({ id: 'r1', status: 'succeeded' });
    expect(b.waiting('r2')).toBeUndefined();
    const second = b.flush();
    await settle();
    batches[1]?.ok();
    await second;
    expect(batches[1]?.runs).toEqual([{ id: 'r1', status: 'succeeded' }]);
    expect(b.waiting('r1')).toBeUndefined();
  });

  it('a failed insert keeps the states waiting and says when it failed', async () => {
    const { insert, batches } = storageSeam();
    const b = createHistoryBuffer<State>({ insert, ready: () => true, logger: silentLogger() });
    b.save({ id: 'r1', status: 'running' });
    const flushing = b.flush();
    await settle();
    batches[0]?.fail(new Error('down'));
    await expect(flushing).rejects.toThrow('down');
    expect(b.failedAt).toBeGreaterThan(0);
    expect(b.waiting('r1')?.status).toBe('running');
  });

  it('drops the oldest waiting state past its bound', () => {
    const b = createHistoryBuffer<State>({ insert: () => Promise.reject(new Error('down')), ready: () => false, logger: silentLogger(), maxWaiting: 2 });
    for (const id of ['r1', 'r2', 'r3']) b.save({ id, status: 'pending' });
    expect(['r1', 'r2', 'r3'].map((id) => b.waiting(id) !== undefined)).toEqual([false, true, true]);
  });

  it('flushes in the background only while storage is ready; shutdown stores what waits and may run twice', async () => {
    vi.useFakeTimers();
    const stored: string[] = [];
    let ready = false;
    const b = createHistoryBuffer<State>({ insert: async (runs) => void stored.push(...runs.map((r) => r.id)), ready: () => ready, logger: silentLogger(), flushMs: 500 });
    b.start();
    b.save({ id: 'r1', status: 'running' });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(stored).toEqual([]);
    ready = true;
    await vi.advanceTimersByTimeAsync(500);
    expect(stored).toEqual(['r1']);
    b.save({ id: 'r2', status: 'running' });
    await b.shutdown();
    await b.shutdown();
    expect(stored).toEqual(['r1', 'r2']);
  });
});
