/** The queue between a handler that sends messages and the reader of a Connect response stream. */
import { describe, expect, it } from 'vitest';
import { createMessageQueue } from '../../../src/server/message-queue.js';

describe('message queue', () => {
  it('hands messages over in order, one at a time: a push resolves once the reader took it', async () => {
    const q = createMessageQueue<number>();
    const taken: number[] = [];
    const first = q.push(1).then(() => taken.push(1));
    const second = q.push(2).then(() => taken.push(2));
    await Promise.resolve();
    expect(taken).toEqual([]);
    const it = q[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: 1 });
    await first;
    expect(taken).toEqual([1]);
    expect(await it.next()).toEqual({ done: false, value: 2 });
    await second;
    q.end();
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it('gives the messages queued before the end or the error, then ends or throws; later ends are ignored', async () => {
    const ended = createMessageQueue<string>();
    void ended.push('a');
    ended.end();
    ended.fail(new Error('ignored'));
    const seen: string[] = [];
    for await (const m of ended) seen.push(m);
    expect(seen).toEqual(['a']);

    const failed = createMessageQueue<string>();
    void failed.push('b');
    failed.fail(new Error('revoked'));
    failed.end();
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const m of failed) got.push(m);
      })(),
    ).rejects.toThrow('revoked');
    expect(got).toEqual(['b']);
    await expect(failed.push('late')).resolves.toBeUndefined();
  });

  it('wakes a reader waiting for the next message, and lets pushes through once the reader left', async () => {
    const q = createMessageQueue<number>();
    const it = q[Symbol.asyncIterator]();
    const next = it.next();
    await q.push(7);
    expect(await next).toEqual({ done: false, value: 7 });
    const pending = q.push(8);
    await it.return?.();
    await expect(pending).resolves.toBeUndefined();
    await expect(q.push(9)).resolves.toBeUndefined();
  });
});
