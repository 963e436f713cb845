/** The on-demand queue alone: slots, order, its caps (queue_size, per tenant, tenant timeout, max_window), cancel while queued. */
import type { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { JobError } from '../../../src/jobs/errors.js';
import { createOnDemandQueue, type OnDemandQueueOptions } from '../../../src/jobs/on-demand-queue.js';
import { taskSchema, type TaskSpec } from '../../../src/jobs/spec.js';
import { runsHarness, until } from './runs-harness.js';

const task = (over: Record<string, unknown> = {}): TaskSpec => taskSchema.parse({ kind: 'system-check', ...over });

function setup(over: Partial<OnDemandQueueOptions> = {}) {
  const h = runsHarness();
  let stopped = false;
  const queue = createOnDemandQueue({ runner: h.runner, maxConcurrent: 2, queueSize: 1, maxSubmittedPerTenant: 2, tenantMaxTimeoutMs: 60_000, maxWindowMs: 3_600_000, stopped: () => stopped, onChange: () => undefined, metrics: h.metrics, ...over });
  const submit = (t: TaskSpec = task()) => {
    const l = h.runner.create({ jobName: '', kind: 'system-check', params: t.params, timeoutMs: t.timeout, attempts: 1, backoffMs: 0, trigger: 'submit' });
    queue.push(l);
    return l;
  };
  return { ...h, queue, submit, stop: () => (stopped = true) };
}

const refusal = (fn: () => void): JobError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof JobError) return err;
    throw err;
  }
  throw new Error('not refused');
};

const refusedCount = async (h: { metrics: Registry }, limit: string): Promise<number> =>
  (await h.metrics.getSingleMetric('heimdall_job_submit_refused_total')?.get())?.values.find((v) => v.labels.limit === limit)?.value ?? 0;

describe('on-demand queue', () => {
  it('runs at most max_concurrent at once, in the order submitted; the next starts as one ends', async () => {
    const q = setup();
    const [a, b, c] = [q.submit(), q.submit(), q.submit()];
    await until(() => q.started.length === 2, 'two runs started');
    expect(q.started.map((s) => s.runId)).toEqual([a.record.id, b.record.id]);
    expect(q.queue.length).toBe(1);
    expect(c.record.status).toBe('pending');
    q.started[0]?.succeed();
    await until(() => c.record.status === 'running', 'the queued run started');
    expect(q.queue.length).toBe(0);
    expect(a.record.status).toBe('succeeded');
  });

  it('refuses past queue_size only while every slot is busy, and counts the refusal', async () => {
    const q = setup();
    q.submit();
    q.submit();
    q.queue.admit(task(), undefined); // slots busy, queue empty: room
    q.submit();
    const err = refusal(() => q.queue.admit(task(), undefined));
    expect(err.code).toBe('resource_exhausted');
    expect(err.message).toBe('the job queue is full (1 waiting, 2 running; jobs.queue_size 1); retry later');
    expect(await refusedCount(q, 'queue_size')).toBe(1);
    q.started[0]?.succeed();
    await until(() => q.queue.length === 0, 'the queued run started');
    q.queue.admit(task(), undefined);
  });

  it('holds a tenant to jobs.max_submitted_per_tenant (pending and running both count) and jobs.tenant_max_timeout', async () => {
    const q = setup({ maxSubmittedPerTenant: 2, queueSize: 10, maxConcurrent: 1 });
    q.submit(task({ params: { threshold: 10 } }));
    const mine = (over: Record<string, unknown> = {}) => task({ kind: 'export', params: { source: 'events', tenant: 'acme', since: '1m' }, timeout: '30s', ...over });
    q.submit(mine());
    q.submit(mine()); // both pending behind the first run
    const err = refusal(() => q.queue.admit(mine(), 'acme'));
    expect(err.code).toBe('resource_exhausted');
    expect(err.message).toContain('tenant "acme" has 2 jobs pending or running (jobs.max_submitted_per_tenant 2)');
    q.queue.admit(mine(), 'other');
    q.queue.admit(mine(), undefined); // a caller bound to no tenant is not held to it
    const slow = refusal(() => q.queue.admit(mine({ timeout: '2m' }), 'other'));
    expect(slow.code).toBe('invalid_argument');
    expect(slow.message).toBe('job.timeout: at most 1m for a token bound to a tenant (jobs.tenant_max_timeout), got 2m');
    expect(await refusedCount(q, 'max_submitted_per_tenant')).toBe(1);
    expect(await refusedCount(q, 'tenant_max_timeout')).toBe(1);
  });

  it('refuses an export wider than query.max_window, naming the parameter', async () => {
    const q = setup();
    const err = refusal(() => q.queue.admit(task({ kind: 'export', params: { source: 'events', since: '2h' } }), undefined));
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toMatch(/^job\.params\.since: the window is at most 1h \(query\.max_window\)/);
    expect(await refusedCount(q, 'max_window')).toBe(1);
    q.queue.admit(task({ kind: 'export', params: { source: 'events', since: '30m' } }), undefined);
  });

  it('cancels a queued run before it starts; a running one is not in its hands', async () => {
    const q = setup({ maxConcurrent: 1 });
    const running = q.submit();
    const queued = q.submit();
    await until(() => q.started.length === 1, 'one run started');
    expect(q.queue.cancelPending(running)).toBe(false);
    expect(q.queue.cancelPending(queued)).toBe(true);
    expect(queued.record).toMatchObject({ status: 'cancelled', error: 'cancelled before it started' });
    expect(q.queue.length).toBe(0);
    expect(q.runner.live(queued.record.id)).toBeUndefined();
  });

  it('starts nothing once the agent stops', async () => {
    const q = setup();
    q.stop();
    q.submit();
    await new Promise((r) => setImmediate(r));
    expect(q.started).toHaveLength(0);
    expect(q.queue.length).toBe(1);
    const depth = await q.metrics.getSingleMetric('heimdall_job_queue_depth')?.get();
    expect(depth?.values[0]?.value).toBe(1);
  });
});
