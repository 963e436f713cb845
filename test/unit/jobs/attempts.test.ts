/** The attempt loop alone: success, retries with backoff, attempts spent, timeout, cancel, lease loss, shutdown, progress. */
import { describe, expect, it } from 'vitest';
import { ABORT_GRACE_MS, RunAborted, runAttempts, type AttemptedRun } from '../../../src/jobs/attempts.js';
import type { RunRecord } from '../../../src/jobs/history.js';
import type { TaskContext, TaskResult, TaskRunner } from '../../../src/jobs/kinds/kind.js';
import { silentLogger } from '../../support/temp.js';

function run(over: Partial<RunRecord> = {}): AttemptedRun {
  const record: RunRecord = {
    id: 'run-1', jobName: 'nightly', kind: 'system-check', params: { a: 1 }, timeoutMs: 60_000, attempts: 1, backoffMs: 1, trigger: 'manual',
    status: 'running', attempt: 1, progress: 0, message: '', error: '', result: {}, correlationId: 'corr-1', instance: 'test', fence: 0,
    scheduledTime: 0, createdAt: 0, startedAt: 1, endedAt: 0, ...over,
  };
  return { record, controller: new AbortController() };
}

/** Hooks that record each update's message, with the run live until `live` is set false. */
function hooks() {
  const h = { live: true, messages: [] as string[], update: () => undefined as void, isLive: () => h.live, logger: silentLogger() };
  return h;
}

/** A task that fails its first `failures` calls with `boom <n>`, then succeeds; its contexts are kept. */
function flaky(failures: number): TaskRunner & { contexts: TaskContext[] } {
  const contexts: TaskContext[] = [];
  const fn = async (_params: Record<string, unknown>, ctx: TaskContext): Promise<TaskResult> => {
    contexts.push(ctx);
    if (contexts.length <= failures) throw new Error(`boom ${contexts.length}`);
    return { message: 'all good', result: { n: contexts.length } };
  };
  return Object.assign(fn, { contexts });
}

/** A task that never ends on its own (it ignores its signal). */
const hangs: TaskRunner = () => new Promise<TaskResult>(() => undefined);

describe('runAttempts', () => {
  it('a first success ends the run succeeded at 100% with the task\'s message and result', async () => {
    const r = run();
    const task = flaky(0);
    expect(await runAttempts(r, task, undefined, hooks())).toBe('ended');
    expect(r.record).toMatchObject({ status: 'succeeded', progress: 100, message: 'all good', result: { n: 1 }, error: '', attempt: 1 });
    expect(task.contexts[0]).toMatchObject({ runId: 'run-1', jobName: 'nightly', correlationId: 'corr-1' });
  });

  it('retries a failed attempt after its backoff, saying so, and a later success clears the error', async () => {
    const r = run({ attempts: 3 });
    const h = hooks();
    h.update = () => void h.messages.push(r.record.message);
    expect(await runAttempts(r, flaky(2), undefined, h)).toBe('ended');
    expect(r.record).toMatchObject({ status: 'succeeded', attempt: 3, error: '' });
    expect(h.messages).toEqual(['attempt 1 failed: boom 1; retrying in 1 ms', 'attempt 2', 'attempt 2 failed: boom 2; retrying in 2 ms', 'attempt 3']);
  });

  it('fails with the last error once the attempts are spent', async () => {
    const r = run({ attempts: 2 });
    expect(await runAttempts(r, flaky(5), undefined, hooks())).toBe('ended');
    expect(r.record).toMatchObject({ status: 'failed', attempt: 2, error: 'boom 2' });
  });

  it('an attempt past the timeout fails it, whether or not the task notices', async () => {
    const r = run({ timeoutMs: 20 });
    expect(await runAttempts(r, hangs, undefined, hooks())).toBe('ended');
    expect(r.record).toMatchObject({ status: 'failed', error: 'timed out after 20 ms' });
  });

  it('a cancel ends it cancelled, during an attempt or during the backoff', async () => {
    const during = run();
    const p = runAttempts(during, hangs, undefined, hooks());
    during.controller.abort(new RunAborted('cancelled by admin'));
    expect(await p).toBe('ended');
    expect(during.record).toMatchObject({ status: 'cancelled', error: 'cancelled by admin' });

    const waiting = run({ attempts: 2, backoffMs: 3_600_000 });
    const h = hooks();
    h.update = () => waiting.controller.abort(new RunAborted('cancelled while waiting'));
    expect(await runAttempts(waiting, flaky(1), undefined, h)).toBe('ended');
    expect(waiting.record).toMatchObject({ status: 'cancelled', error: 'cancelled while waiting', attempt: 1 });
  });

  it("a cancel waits for the task's own cleanup (an export removing its part file), at most ABORT_GRACE_MS when it does not notice", async () => {
    const cleaned: string[] = [];
    const tidy: TaskRunner = (_params, ctx) =>
      new Promise<TaskResult>((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => setTimeout(() => (cleaned.push('part file removed'), reject(new Error('aborted'))), 50));
      });
    const r = run();
    const p = runAttempts(r, tidy, undefined, hooks());
    r.controller.abort(new RunAborted('cancelled by admin'));
    expect(await p).toBe('ended');
    expect(cleaned).toEqual(['part file removed']);
    expect(r.record).toMatchObject({ status: 'cancelled', error: 'cancelled by admin' });

    // A task that ends well after the cancel, within the grace, still ends the run cancelled.
    const late: TaskRunner = (_params, ctx) => new Promise<TaskResult>((resolve) => ctx.signal.addEventListener('abort', () => setTimeout(() => resolve({ message: 'done anyway', result: {} }), 20)));
    const l = run();
    const lp = runAttempts(l, late, undefined, hooks());
    l.controller.abort(new RunAborted('cancelled'));
    expect(await lp).toBe('ended');
    expect(l.record.status).toBe('cancelled');

    const deaf = run();
    const t0 = performance.now();
    const dp = runAttempts(deaf, hangs, undefined, hooks());
    deaf.controller.abort(new RunAborted('cancelled'));
    expect(await dp).toBe('ended');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(ABORT_GRACE_MS - 5);
    expect(performance.now() - t0).toBeLessThan(ABORT_GRACE_MS + 2_000);
  });

  it('a lost lease fails it without a retry, with the lease\'s reason', async () => {
    const r = run({ attempts: 3 });
    const lease = new AbortController();
    const p = runAttempts(r, hangs, lease.signal, hooks());
    lease.abort(new Error('lease lost to agent-2'));
    expect(await p).toBe('ended');
    expect(r.record).toMatchObject({ status: 'failed', error: 'lease lost to agent-2', attempt: 1 });

    const waiting = run({ attempts: 2, backoffMs: 3_600_000 });
    const lease2 = new AbortController();
    const h = hooks();
    h.update = () => lease2.abort(new Error('lease lost while waiting'));
    expect(await runAttempts(waiting, flaky(1), lease2.signal, h)).toBe('ended');
    expect(waiting.record).toMatchObject({ status: 'failed', error: 'lease lost while waiting' });
  });

  it('a shutdown interrupts it and leaves the record running', async () => {
    const r = run();
    const p = runAttempts(r, hangs, undefined, hooks());
    r.controller.abort(new RunAborted('the agent is shutting down', true));
    expect(await p).toBe('interrupted');
    expect(r.record.status).toBe('running');

    const waiting = run({ attempts: 2, backoffMs: 3_600_000 });
    const h = hooks();
    h.update = () => waiting.controller.abort(new RunAborted('the agent is shutting down', true));
    expect(await runAttempts(waiting, flaky(1), undefined, h)).toBe('interrupted');
    expect(waiting.record.status).toBe('running');
  });

  it('progress is clamped and rounded, and dropped once the attempt is aborted or the run let go', async () => {
    const r = run();
    const seen: Array<[number, string]> = [];
    const h = hooks();
    h.update = () => void seen.push([r.record.progress, r.record.message]);
    const reports: TaskRunner = async (_params, ctx) => {
      ctx.progress(142.4, 'over');
      ctx.progress(-3, 'under');
      ctx.progress(33.6, 'a third');
      h.live = false;
      ctx.progress(50, 'after the run was let go');
      h.live = true;
      return { message: 'done', result: {} };
    };
    await runAttempts(r, reports, undefined, h);
    expect(seen).toEqual([[100, 'over'], [0, 'under'], [34, 'a third']]);

    const late = run({ timeoutMs: 20 });
    let ctx: TaskContext | undefined;
    const keeps: TaskRunner = (_params, c) => {
      ctx = c;
      return new Promise<TaskResult>(() => undefined);
    };
    await runAttempts(late, keeps, undefined, hooks());
    ctx?.progress(70, 'late report from a timed-out attempt');
    expect(late.record).toMatchObject({ progress: 0, status: 'failed' });
  });
});
