/** The storage queries of one call: its own turn-taking inside the fair scheduler, and the end of the call at its first failure. */
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCallQueries } from '../../../src/query/call.js';
import { createQueryScheduler } from '../../../src/query/scheduler.js';
import { GrpcError } from '../../../src/server/errors.js';

const scheduler = (o: { maxConcurrent?: number; perTenant?: number; queueTimeoutMs?: number } = {}) =>
  createQueryScheduler({ maxConcurrent: o.maxConcurrent ?? 4, maxConcurrentPerTenant: o.perTenant ?? 2, maxQueuedPerTenant: 64, maxQueued: 256, queueTimeoutMs: o.queueTimeoutMs ?? 60_000, metrics: new Registry() });

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('the queries of one call', () => {
  afterEach(() => vi.useRealTimers());

  it("does not let a call's own queries use up each other's queue timeout: a summary's eight queries on two slots all run", async () => {
    vi.useFakeTimers();
    // Each query takes 9 s, under a 10 s queue timeout; eight of them on two slots take four rounds.
    const s = scheduler({ queueTimeoutMs: 10_000 });
    const run = createCallQueries({ scheduler: s, key: 'tenant "a"', parallel: 2, signal: new AbortController().signal });
    const queries = Array.from({ length: 8 }, (_, i) => run(() => new Promise<number>((resolve) => setTimeout(() => resolve(i), 9_000))));
    const all = Promise.all(queries);
    await vi.advanceTimersByTimeAsync(4 * 9_000);
    expect(await all).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('ends the call at its first failure: the queries waiting never start', async () => {
    const s = scheduler({ maxConcurrent: 1, perTenant: 1 });
    const run = createCallQueries({ scheduler: s, key: 'tenant "a"', parallel: 2, signal: new AbortController().signal });
    const started: number[] = [];
    let fail!: () => void;
    const failed = new Promise<void>((_, reject) => (fail = () => reject(new GrpcError(status.RESOURCE_EXHAUSTED, 'query.max_memory: over'))));
    const first = run(async () => {
      started.push(0);
      await failed;
    });
    // One waits for a slot in the scheduler, the others inside the call.
    const rest = Array.from({ length: 6 }, (_, i) => run(async () => void started.push(i + 1)));
    await flush();
    expect(started).toEqual([0]);
    fail();
    const outcomes = await Promise.allSettled([first, ...rest]);
    expect(outcomes.every((o) => o.status === 'rejected' && (o.reason as Error).message === 'query.max_memory: over')).toBe(true);
    await flush();
    expect(started).toEqual([0]);
    // The scheduler is free for the next call.
    expect(await s.run('tenant "b"', async () => 'next')).toBe('next');
  });

  it('starts nothing more once the call is cancelled', async () => {
    const s = scheduler({ maxConcurrent: 1, perTenant: 1 });
    const cancel = new AbortController();
    const run = createCallQueries({ scheduler: s, key: 'tenant "a"', parallel: 1, signal: cancel.signal });
    let open!: () => void;
    const first = run(() => new Promise<string>((resolve) => (open = () => resolve('first'))));
    let ran = false;
    const second = run(async () => (ran = true)).catch((e: unknown) => e);
    cancel.abort(new Error('cancelled by the client'));
    expect(((await second) as Error).message).toBe('cancelled by the client');
    open();
    expect(await first).toBe('first');
    expect(ran).toBe(false);
  });
});
