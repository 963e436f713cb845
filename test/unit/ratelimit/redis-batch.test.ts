/** Gathering bucket checks into script calls: what goes out together, in which order answers come back, and the timeout. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRedisBatcher, type RunBuckets } from '../../../src/ratelimit/redis-batch.js';

/** A script runner that records each call and answers when told (the real script runs in backends.test.ts). */
function runner() {
  const calls: Array<{ keys: string[]; args: number[]; answer: (reply: unknown[]) => void; fail: (err: Error) => void }> = [];
  const run: RunBuckets = (keys, args) => new Promise((answer, fail) => calls.push({ keys: [...keys], args: [...args], answer, fail }));
  return { run, calls };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('redis batcher', () => {
  afterEach(() => vi.useRealTimers());

  it('sends the checks of one turn of the event loop as one call, and answers each with its own values', async () => {
    const { run, calls } = runner();
    const batcher = createRedisBatcher({ run, timeoutMs: 60_000, maxBatch: 128 });
    const answers = [batcher.take('a', 5, 0.5, 1), batcher.take('b', 6, 0.25, 0), batcher.take('a', 5, 0.5, 2)];
    expect(calls).toHaveLength(0);
    await nextTurn();
    expect(calls.map((c) => [c.keys, c.args])).toEqual([[['a', 'b', 'a'], [5, 0.5, 1, 6, 0.25, 0, 5, 0.5, 2]]]);
    calls[0]?.answer([1, '4', 1, '6', 0, '4']);
    expect(await Promise.all(answers)).toEqual([[1, '4'], [1, '6'], [0, '4']]);
    // The next turn starts a new batch.
    const later = batcher.take('c', 1, 1, 1);
    await nextTurn();
    calls[1]?.answer([1, '0']);
    expect(await later).toEqual([1, '0']);
  });

  it('sends a full batch at once, and each check alone with maxBatch 1', async () => {
    const { run, calls } = runner();
    const batcher = createRedisBatcher({ run, timeoutMs: 60_000, maxBatch: 2 });
    void batcher.take('a', 1, 1, 1);
    void batcher.take('b', 1, 1, 1);
    expect(calls.map((c) => c.keys)).toEqual([['a', 'b']]);
    void batcher.take('c', 1, 1, 1);
    await nextTurn();
    expect(calls.map((c) => c.keys)).toEqual([['a', 'b'], ['c']]);
    const single = runner();
    const alone = createRedisBatcher({ run: single.run, timeoutMs: 60_000, maxBatch: 1 });
    void alone.take('a', 1, 1, 1);
    void alone.take('b', 1, 1, 1);
    expect(single.calls.map((c) => c.keys)).toEqual([['a'], ['b']]);
  });

  it('fails the whole batch on an error, a short answer, or its timeout (a late answer is ignored)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { run, calls } = runner();
    const batcher = createRedisBatcher({ run, timeoutMs: 5, maxBatch: 128 });
    const failed = [batcher.take('a', 1, 1, 1), batcher.take('b', 1, 1, 1)];
    await nextTurn();
    calls[0]?.fail(new Error('NOSCRIPT gone'));
    await expect(Promise.all(failed)).rejects.toThrow('NOSCRIPT gone');
    const short = [batcher.take('a', 1, 1, 1), batcher.take('b', 1, 1, 1)];
    await nextTurn();
    calls[1]?.answer([1, '0']);
    expect(await Promise.all(short.map((p) => p.then((r) => r, (err: Error) => err.message)))).toEqual(['redis answered 2 values for 2 checks', 'redis answered 2 values for 2 checks']);
    const slow = [batcher.take('a', 1, 1, 1), batcher.take('b', 1, 1, 1)].map((p) => p.then((r) => r, (err: Error) => err.message));
    await nextTurn();
    vi.advanceTimersByTime(5);
    calls[2]?.answer([1, '0', 1, '0']);
    expect(await Promise.all(slow)).toEqual(['redis check took over 5 ms', 'redis check took over 5 ms']);
  });

  it('fails a batch whose call throws at once (no connection)', async () => {
    const batcher = createRedisBatcher({
      run: () => {
        throw new Error('Stream isn\'t writeable');
      },
      timeoutMs: 60_000,
      maxBatch: 1,
    });
    await expect(batcher.take('a', 1, 1, 1)).rejects.toThrow("Stream isn't writeable");
  });
});
