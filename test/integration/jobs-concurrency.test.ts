import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { Concurrency, JobService, JobStatus } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { until } from '../support/wait.js';

/** The value of one sample in Prometheus text, 0 when absent. */
const sample = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe('jobs: runs of scheduled jobs with concurrency allow are bounded (real time)', () => {
  // A server that accepts connections and never answers: every http-check run against it hangs.
  const held: Socket[] = [];
  const silent = createServer((s) => void held.push(s));
  let url = '';
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
    t = await startTestAgent({ jobs: { system_check: { enabled: false }, max_scheduled_runs: 5 } });
    c = connect({ addr: t.grpcAddress });
  }, 60_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    for (const s of held) s.destroy();
    silent.close();
  });

  const running = async (name: string): Promise<number> => (await c.unary(JobService.method.listRuns, { jobName: name, status: JobStatus.RUNNING, pageSize: 1000 })).runs.length;
  const metrics = async (): Promise<string> => (await fetch(`${t.adminUrl}/metrics`)).text();
  const hanging = (name: string, maxRunning?: number) =>
    c.unary(JobService.method.createScheduledJob, { job: { name, schedule: '* * * * * *', kind: 'http-check', params: { url, timeout: '300s' }, concurrency: Concurrency.ALLOW, ...(maxRunning ? { maxRunning } : {}) } });

  it('a job whose runs hang runs at most max_running (default 4) at once; later ticks are skipped, counted and logged', async () => {
    const created = await hanging('pile');
    let most = 0;
    await until(async () => {
      most = Math.max(most, await running('pile'));
      // Fails fast on a scheduler without a cap, whose runs keep piling up.
      if (most > 4) return true;
      return sample(await metrics(), 'heimdall_job_ticks_skipped_total{job="pile",reason="max-running"}') >= 3;
    }, 30_000, 'three ticks skipped past max_running');
    expect(most).toBeLessThanOrEqual(4);
    expect(await running('pile')).toBe(4);
    expect(created.job?.maxRunning).toBe(4);
    expect(t.logs.some((l) => l.job === 'pile' && typeof l.msg === 'string' && l.msg.includes('max_running'))).toBe(true);
    await c.unary(JobService.method.deleteScheduledJob, { name: 'pile' });
    // Its runs end only with their timeout: cancel them so the next test starts from none.
    for (const r of (await c.unary(JobService.method.listRuns, { jobName: 'pile', status: JobStatus.RUNNING, pageSize: 1000 })).runs) await c.unary(JobService.method.cancelJob, { id: r.id });
  }, 60_000);

  it('a manual trigger past the cap is refused with RESOURCE_EXHAUSTED naming it', async () => {
    await hanging('one', 1);
    await until(async () => (await running('one')) === 1, 10_000, 'one run');
    const err = await c.unary(JobService.method.triggerScheduledJob, { name: 'one' }).then(
      () => undefined,
      (e: unknown) => e as { code: number; details: string },
    );
    expect(err?.code).toBe(8); // RESOURCE_EXHAUSTED
    expect(err?.details).toMatch(/job one has 1 run running \(max_running 1\)/);
    await c.unary(JobService.method.deleteScheduledJob, { name: 'one' });
    for (const r of (await c.unary(JobService.method.listRuns, { jobName: 'one', status: JobStatus.RUNNING, pageSize: 1000 })).runs) await c.unary(JobService.method.cancelJob, { id: r.id });
  }, 30_000);

  it('all scheduled runs together stay within jobs.max_scheduled_runs (5 here)', async () => {
    await hanging('a', 10);
    await hanging('b', 10);
    let most = 0;
    await until(async () => {
      most = Math.max(most, (await running('a')) + (await running('b')));
      if (most > 5) return true;
      const text = await metrics();
      return sample(text, 'heimdall_job_ticks_skipped_total{job="a",reason="scheduler-full"}') + sample(text, 'heimdall_job_ticks_skipped_total{job="b",reason="scheduler-full"}') >= 3;
    }, 30_000, 'three ticks skipped past jobs.max_scheduled_runs');
    expect(most).toBeLessThanOrEqual(5);
    expect((await running('a')) + (await running('b'))).toBe(5);
    for (const name of ['a', 'b']) await c.unary(JobService.method.deleteScheduledJob, { name });
  }, 60_000);
});
