import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { Concurrency, JobScope, JobService, JobStatus } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary } from '../support/binaries.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { tempDir } from '../support/temp.js';
import { sleep, until } from '../support/wait.js';

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
      return sample(await metrics(), 'heimdall_job_ticks_skipped_total{job_name="pile",reason="max-running"}') >= 3;
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
      return sample(text, 'heimdall_job_ticks_skipped_total{job_name="a",reason="scheduler-full"}') + sample(text, 'heimdall_job_ticks_skipped_total{job_name="b",reason="scheduler-full"}') >= 3;
    }, 30_000, 'three ticks skipped past jobs.max_scheduled_runs');
    expect(most).toBeLessThanOrEqual(5);
    expect((await running('a')) + (await running('b'))).toBe(5);
    for (const name of ['a', 'b']) await c.unary(JobService.method.deleteScheduledJob, { name });
  }, 60_000);
});

/** A server that accepts connections and never answers: every http-check run against it hangs. */
async function silentServer(): Promise<{ url: string; close(): void }> {
  const held: Socket[] = [];
  const server = createServer((s) => void held.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close() {
      for (const s of held) s.destroy();
      server.close();
    },
  };
}

describe('jobs: retries of interrupted runs take the caps too', () => {
  const data = tempDir();
  let silent: Awaited<ReturnType<typeof silentServer>>;
  beforeAll(async () => {
    silent = await silentServer();
  });
  afterAll(() => {
    silent.close();
    data.cleanup();
  });

  it('after a restart with jobs.max_scheduled_runs 1, one of two interrupted runs is retried; the other is skipped, counted and logged', async () => {
    /** An agent on the test's data, once its stored jobs are loaded (calls on them answer UNAVAILABLE until then). */
    const agent = async (maxScheduledRuns: number): Promise<{ t: TestAgent; c: AgentClient }> => {
      const t = await startTestAgent({ log: { level: 'info' }, storage: { embedded: { path: data.path } }, jobs: { system_check: { enabled: false }, max_scheduled_runs: maxScheduledRuns } });
      const c = connect({ addr: t.grpcAddress });
      await until(async () => (await c.unary(JobService.method.listScheduledJobs, {}).catch(() => undefined)) ?? false, 15_000, 'the jobs to be restored');
      return { t, c };
    };
    const ids: string[] = [];
    const { t: first, c: before } = await agent(2);
    try {
      for (const name of ['r1', 'r2']) {
        await before.unary(JobService.method.createScheduledJob, { job: { name, schedule: '0 0 1 1 *', kind: 'http-check', params: { url: silent.url, timeout: '120s' }, concurrency: Concurrency.ALLOW, retry: { attempts: 2 } } });
        ids.push((await before.unary(JobService.method.triggerScheduledJob, { name })).job?.id ?? '');
      }
      for (const id of ids) await until(async () => (await before.unary(JobService.method.getJob, { id })).job?.status === JobStatus.RUNNING, 10_000, 'the runs to start');
    } finally {
      before.close();
      await first.stop();
    }

    const { t: second, c } = await agent(1);
    try {
      await until(() => second.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('interrupted run not retried: 1 runs of scheduled jobs are running (jobs.max_scheduled_runs 1)')), 30_000, 'a retry skipped at the cap');
      const running = async () => {
        let n = 0;
        for (const name of ['r1', 'r2']) n += (await c.unary(JobService.method.listRuns, { jobName: name, status: JobStatus.RUNNING, pageSize: 100 })).runs.length;
        return n;
      };
      await until(async () => (await running()) === 1, 10_000, 'the retried run');
      await sleep(500);
      expect(await running()).toBe(1);
      for (const id of ids) expect((await c.unary(JobService.method.getJob, { id })).job?.error).toBe('interrupted: the agent stopped while it ran');
      const text = await (await fetch(`${second.adminUrl}/metrics`)).text();
      expect(sample(text, 'heimdall_job_ticks_skipped_total{job_name="r1",reason="scheduler-full"}') + sample(text, 'heimdall_job_ticks_skipped_total{job_name="r2",reason="scheduler-full"}')).toBe(1);
      for (const name of ['r1', 'r2']) await c.unary(JobService.method.deleteScheduledJob, { name });
      for (const r of (await c.unary(JobService.method.listRuns, { status: JobStatus.RUNNING, pageSize: 100 })).runs) await c.unary(JobService.method.cancelJob, { id: r.id });
    } finally {
      c.close();
      await second.stop();
    }
  }, 120_000);
});

describe.runIf(haveBinary('redis-server'))('jobs: cluster ticks at once take their slots before they claim the tick', () => {
  let redis: TestRedis;
  let silent: Awaited<ReturnType<typeof silentServer>>;
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    redis = await startRedis();
    silent = await silentServer();
    t = await startTestAgent({ jobs: { system_check: { enabled: false }, max_scheduled_runs: 2, redis: { url: redis.url } } });
    c = connect({ addr: t.grpcAddress });
    // Calls on scheduled jobs answer UNAVAILABLE until the stored ones are loaded.
    await until(async () => (await c.unary(JobService.method.listScheduledJobs, {}).catch(() => undefined)) ?? false, 15_000, 'the jobs to be restored');
  }, 60_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    await redis.stop();
    silent.close();
  });

  it('three cluster jobs whose claims wait on Redis at the same ticks start two runs at most (jobs.max_scheduled_runs 2)', async () => {
    // Redis holds every write for 2.5 s: the first ticks of the three jobs all wait on their claim at once.
    const admin = new Redis(redis.url);
    await admin.call('CLIENT', 'PAUSE', '2500', 'WRITE');
    admin.disconnect();
    const names = ['k1', 'k2', 'k3'];
    for (const name of names) {
      await c.unary(JobService.method.createScheduledJob, { job: { name, schedule: '* * * * * *', kind: 'http-check', params: { url: silent.url, timeout: '120s' }, concurrency: Concurrency.ALLOW, scope: JobScope.CLUSTER } });
    }
    const running = async () => {
      let n = 0;
      for (const name of names) n += (await c.unary(JobService.method.listRuns, { jobName: name, status: JobStatus.RUNNING, pageSize: 100 })).runs.length;
      return n;
    };
    // Once Redis answers again, the claims that waited are granted: runs start, as many as took a slot.
    let most = 0;
    await until(async () => (most = Math.max(most, await running())) >= 2, 30_000, 'runs once Redis answers');
    for (let i = 0; i < 10; i++) {
      await sleep(200);
      most = Math.max(most, await running());
    }
    expect(most).toBe(2);
    const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
    expect(names.reduce((n, name) => n + sample(text, `heimdall_job_ticks_skipped_total{job_name="${name}",reason="scheduler-full"}`), 0)).toBeGreaterThanOrEqual(1);
    for (const name of names) await c.unary(JobService.method.deleteScheduledJob, { name });
    for (const r of (await c.unary(JobService.method.listRuns, { status: JobStatus.RUNNING, pageSize: 100 })).runs) await c.unary(JobService.method.cancelJob, { id: r.id });
  }, 60_000);
});
