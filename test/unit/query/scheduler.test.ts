/** The fair scheduler of QueryService's storage queries: global and per-tenant slots, turns, queue bounds. */
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createQueryScheduler, type QuerySchedulerOptions } from '../../../src/query/scheduler.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { asGrpcError, GrpcError } from '../../../src/server/errors.js';

/** A refusal as the gRPC transport answers it, after checking it is a transport-neutral AgentError. */
function onTheWire(err: unknown): unknown {
  expect(err).toBeInstanceOf(AgentError);
  return asGrpcError(err);
}

/** A query whose end the test decides, recording when it started. */
function gate(log: string[], name: string) {
  let open!: () => void;
  const done = new Promise<void>((resolve) => (open = resolve));
  return {
    work: async () => {
      log.push(name);
      await done;
      return name;
    },
    finish: () => open(),
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function scheduler(o: Partial<QuerySchedulerOptions> = {}) {
  const refused: string[] = [];
  const metrics = new Registry();
  const s = createQueryScheduler({ maxConcurrent: 1, maxConcurrentPerTenant: 1, maxQueuedPerTenant: 100, maxQueued: 1000, queueTimeoutMs: 60_000, metrics, onRefused: (l) => refused.push(l), ...o });
  return { s, refused, metrics };
}

describe('query scheduler', () => {
  afterEach(() => vi.useRealTimers());

  it('gives each free slot to the tenant served least recently: a flood waits its turn', async () => {
    const { s } = scheduler();
    const started: string[] = [];
    const a = Array.from({ length: 5 }, (_, i) => gate(started, `a${i}`));
    const results = a.map((g) => s.run('a', g.work));
    await flush();
    const b = gate(started, 'b0');
    const c = gate(started, 'c0');
    const rb = s.run('b', b.work);
    const rc = s.run('c', c.work);
    await flush();
    expect(started).toEqual(['a0']);
    a[0]?.finish();
    await flush();
    // b and c arrived after a's flood but go before a's second query.
    expect(started).toEqual(['a0', 'b0']);
    b.finish();
    await flush();
    expect(started).toEqual(['a0', 'b0', 'c0']);
    c.finish();
    await flush();
    expect(started).toEqual(['a0', 'b0', 'c0', 'a1']);
    for (const g of a) g.finish();
    expect(await Promise.all([...results, rb, rc])).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'c0']);
  });

  it('caps queries per tenant and in all: a second tenant runs beside the first', async () => {
    const { s, metrics } = scheduler({ maxConcurrent: 3, maxConcurrentPerTenant: 2 });
    const started: string[] = [];
    const a = Array.from({ length: 4 }, (_, i) => gate(started, `a${i}`));
    const b = Array.from({ length: 2 }, (_, i) => gate(started, `b${i}`));
    const all = [...a.map((g) => s.run('a', g.work)), ...b.map((g) => s.run('b', g.work))];
    await flush();
    expect(started).toEqual(['a0', 'a1', 'b0']);
    expect(await metrics.getSingleMetricAsString('heimdall_query_queued')).toMatch(/heimdall_query_queued 3$/m);
    b[0]?.finish();
    await flush();
    // b's freed slot: b has none running now, a has two (its cap): b's next query.
    expect(started).toEqual(['a0', 'a1', 'b0', 'b1']);
    a[0]?.finish();
    await flush();
    expect(started).toEqual(['a0', 'a1', 'b0', 'b1', 'a2']);
    for (const g of [...a, ...b]) g.finish();
    await Promise.all(all);
    expect(started).toHaveLength(6);
    expect(await metrics.getSingleMetricAsString('heimdall_query_running')).toMatch(/heimdall_query_running 0$/m);
  });

  it('refuses past query.max_queued_per_tenant with RESOURCE_EXHAUSTED naming it; other tenants still queue', async () => {
    const { s, refused } = scheduler({ maxQueuedPerTenant: 2 });
    const started: string[] = [];
    const a = Array.from({ length: 3 }, (_, i) => gate(started, `a${i}`));
    const ok = a.map((g) => s.run('a', g.work));
    const err = onTheWire(await s.run('a', async () => 'never').catch((e: unknown) => e));
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((err as GrpcError).message).toContain('query.max_queued_per_tenant 2');
    const b = s.run('b', async () => 'b');
    for (const g of a) g.finish();
    expect(await Promise.all([...ok, b])).toEqual(['a0', 'a1', 'a2', 'b']);
    expect(refused).toEqual(['max_queued_per_tenant']);
  });

  it('refuses past query.max_queued, all callers together, with RESOURCE_EXHAUSTED naming it', async () => {
    const { s, refused } = scheduler({ maxQueued: 3 });
    const started: string[] = [];
    const first = gate(started, 'a0');
    const running = s.run('a', first.work);
    // Three callers wait, one query each: no caller is over its own bound, but all together are.
    const waiting = ['b', 'c', 'd'].map((k) => s.run(k, async () => k));
    const err = onTheWire(await s.run('e', async () => 'never').catch((e: unknown) => e)) as GrpcError;
    expect(err).toBeInstanceOf(GrpcError);
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.message).toBe('too many queries waiting, all callers together: 3 (query.max_queued 3); retry later');
    expect(refused).toEqual(['max_queued']);
    first.finish();
    expect(await Promise.all([running, ...waiting])).toEqual(['a0', 'b', 'c', 'd']);
  });

  it('refuses a query that waits past query.queue_timeout, and never runs it', async () => {
    vi.useFakeTimers();
    const { s, refused } = scheduler({ queueTimeoutMs: 5_000 });
    const started: string[] = [];
    const first = gate(started, 'a0');
    const running = s.run('a', first.work);
    let ran = false;
    const waiting = s.run('b', async () => (ran = true)).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(refused).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    const err = onTheWire(await waiting) as GrpcError;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.message).toContain('query.queue_timeout');
    expect(refused).toEqual(['queue_timeout']);
    first.finish();
    await running;
    expect(ran).toBe(false);
  });

  it('drops a waiting query whose call is cancelled; the slot goes to the next one', async () => {
    const { s } = scheduler();
    const started: string[] = [];
    const first = gate(started, 'a0');
    const running = s.run('a', first.work);
    const cancel = new AbortController();
    const dropped = s.run('b', async () => 'never', cancel.signal).catch((e: unknown) => e);
    const next = gate(started, 'c0');
    const after = s.run('c', next.work);
    cancel.abort(new Error('cancelled by the client'));
    expect(((await dropped) as Error).message).toBe('cancelled by the client');
    first.finish();
    await running;
    await flush();
    expect(started).toEqual(['a0', 'c0']);
    next.finish();
    expect(await after).toBe('c0');
  });

  it('frees the slot of a query that fails', async () => {
    const { s } = scheduler();
    await expect(s.run('a', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await s.run('a', async () => 'next')).toBe('next');
  });
});
