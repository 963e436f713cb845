import { existsSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { JobScope, JobService, JobStatus, JobTrigger, MisfirePolicy, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { uuidv7 } from '../../src/ids/uuidv7.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';
import { refused, sleep, until } from '../support/wait.js';

// Waits are polls that end as soon as the awaited state is there; on a loaded 2-core machine a run,
// a restart or a stored-jobs load can take many seconds, so every wait and test gets room for that.
vi.setConfig({ testTimeout: 120_000 });

/** A TCP server that accepts connections and never answers: an http-check against it runs until its timeout. */
async function silentServer(): Promise<{ server: Server; url: string }> {
  const server = createServer(() => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** An HTTP server that answers 200 to everything: a target that outlives the agent's restarts. */
async function okServer(): Promise<{ server: Server; url: string }> {
  const server = createHttpServer((_, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

interface Component {
  name: string;
  state: string;
  reason: string;
}
const components = async (t: TestAgent): Promise<Component[]> => ((await (await fetch(`${t.adminUrl}/status`)).json()) as { components: Component[] }).components;

describe('jobs: restarts, agents that went away, other replicas', () => {
  const data = tempDir();
  const exports = tempDir();
  let t: TestAgent;
  let c: AgentClient;
  let silent: { server: Server; url: string };
  let ok: { server: Server; url: string };
  const start = async (jobs: Record<string, unknown> = {}) => {
    t = await startTestAgent({ storage: { embedded: { path: data.path } }, jobs: { instance: 'pod-a', max_concurrent: 2, export_dir: exports.path, system_check: { enabled: false }, ...jobs } });
    c = connect({ addr: t.grpcAddress });
    // Stored jobs and unfinished runs are restored once storage answers.
    await until(async () => (await c.unary(JobService.method.listScheduledJobs, {}).catch(() => undefined)) ?? false, 30_000, 'the jobs to be restored');
  };
  const restart = async (pause = 0) => {
    c.close();
    await t.agent.shutdown();
    await sleep(pause);
    await start();
  };
  const job = async (id: string): Promise<Job> => (await c.unary(JobService.method.getJob, { id })).job as Job;
  const runsOf = async (name: string): Promise<Job[]> => (await c.unary(JobService.method.listRuns, { jobName: name, pageSize: 1000 })).runs;

  /** Writes a run record as another agent would have left it. */
  const foreignRun = async (r: { id: string; status: string; instance: string; savedAgoMs: number; url: string; attempts?: number }) => {
    const now = Date.now();
    const t0 = now - 120_000;
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_job_runs (Id, JobName, Kind, Params, TimeoutMs, Attempts, BackoffMs, Trigger, Status, Attempt, Progress, Message, Error, Result, CorrelationId, Instance, Fence, ScheduledTime, CreatedAt, StartedAt, EndedAt, Version)
       VALUES ({id:String}, '', 'http-check', {params:String}, 5000, {attempts:UInt32}, 1000, 'submit', {status:String}, 1, 0, '', '', '{}', {id:String}, {instance:String}, 0, 0, fromUnixTimestamp64Milli({t0:Int64}), fromUnixTimestamp64Milli({started:Int64}), 0, {version:UInt64})`,
      { id: r.id, params: JSON.stringify({ url: r.url }), attempts: r.attempts ?? 1, status: r.status, instance: r.instance, t0, started: r.status === 'running' ? t0 : 0, version: (now - r.savedAgoMs) * 1000 },
    );
  };

  beforeAll(async () => {
    silent = await silentServer();
    ok = await okServer();
    await start();
  }, 120_000);
  afterAll(async () => {
    c.close();
    await t.stop();
    silent.server.close();
    ok.server.close();
    data.cleanup();
    exports.cleanup();
  });

  it('a graceful restart keeps queued jobs (same id, no attempt used) and retries the runs it stopped under', async () => {
    // Two slots (jobs.max_concurrent): both taken by runs that never end; the first may be retried once.
    const running: Job[] = [];
    for (const attempts of [2, 1]) running.push((await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: silent.url, timeout: '60s' }, retry: { attempts } })).job as Job);
    const queued: Job[] = [];
    for (let i = 0; i < 2; i += 1) queued.push((await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: ok.url } })).job as Job);
    for (const r of running) await until(async () => (await job(r.id)).status === JobStatus.RUNNING, 30_000, 'the runs to start');
    expect((await job(queued[0]?.id ?? '')).status).toBe(JobStatus.PENDING);
    // What an export killed mid-way leaves behind.
    const part = join(exports.path, `all.jsonl.${uuidv7(Date.now())}.part`);
    writeFileSync(part, '{"half":');

    await restart();
    await until(() => !existsSync(part), 30_000, 'the part file to be removed');

    // Accepted but never started: they run now, as themselves.
    for (const q of queued) {
      const done = await until(async () => {
        const j = await job(q.id);
        return j.status === JobStatus.SUCCEEDED || j.status === JobStatus.FAILED ? j : undefined;
      }, 15_000, 'a queued job to run after the restart');
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      expect(done.attempt).toBe(1);
      expect(done.trigger).toBe(JobTrigger.SUBMIT);
    }
    // Started: failed as interrupted; the first retried once more (attempts 2), the second not (attempts 1).
    const all = (await c.unary(JobService.method.listJobs, { kind: 'http-check', pageSize: 1000 })).jobs;
    const retries = [];
    for (const r of running) {
      const was = await job(r.id);
      expect(was.status).toBe(JobStatus.FAILED);
      expect(was.error).toBe('interrupted: the agent stopped while it ran');
      retries.push(all.find((j) => j.trigger === JobTrigger.RETRY && j.correlationId === was.correlationId));
    }
    expect(retries[0]?.attempt).toBe(2);
    expect(retries[1]).toBeUndefined();
    await c.unary(JobService.method.cancelJob, { id: retries[0]?.id ?? '' });
  }, 120_000);

  it('recovers the runs of an agent that went away (no heartbeat): queued ones run, started ones fail and are retried; live ones are left alone and can be watched', async () => {
    const stalePending = uuidv7(Date.now() - 120_000);
    const staleRunning = uuidv7(Date.now() - 119_000);
    const alive = uuidv7(Date.now() - 118_000);
    await foreignRun({ id: stalePending, status: 'pending', instance: 'pod-gone', savedAgoMs: 90_000, url: ok.url });
    await foreignRun({ id: staleRunning, status: 'running', instance: 'pod-gone', savedAgoMs: 90_000, url: silent.url, attempts: 2 });
    await foreignRun({ id: alive, status: 'running', instance: 'pod-b', savedAgoMs: 1_000, url: silent.url });
    await restart();

    const ran = await until(async () => {
      const j = await job(stalePending);
      return j.status === JobStatus.SUCCEEDED ? j : undefined;
    }, 15_000, 'the orphaned queued job to run here');
    expect(ran.attempt).toBe(1);
    // Recovery marks it failed on its own (not necessarily before the queued one ran).
    const failed = await until(async () => {
      const j = await job(staleRunning);
      return j.status === JobStatus.FAILED ? j : undefined;
    }, 30_000, 'the orphaned started job to be failed');
    expect(failed.error).toBe('interrupted: its agent pod-gone went away (no heartbeat for 60 s)');
    const retry = (await c.unary(JobService.method.listJobs, { kind: 'http-check', pageSize: 1000 })).jobs.find((j) => j.trigger === JobTrigger.RETRY && j.correlationId === staleRunning);
    expect(retry?.attempt).toBe(2);
    await c.unary(JobService.method.cancelJob, { id: retry?.id ?? '' });

    // pod-b still heartbeats its run: not touched. Watching it follows its history until it ends there.
    expect((await job(alive)).status).toBe(JobStatus.RUNNING);
    expect((await refused(c.unary(JobService.method.cancelJob, { id: alive }))).code).toBe(status.FAILED_PRECONDITION);
    const seen: Job[] = [];
    const watching = c.serverStream(JobService.method.watchJob, { id: alive }, (m) => void (m.job && seen.push(m.job)));
    await until(() => seen.length === 1, 30_000, 'the first state');
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_job_runs (Id, Kind, Status, Attempt, Attempts, Progress, Message, CorrelationId, Instance, CreatedAt, Version)
       SELECT Id, Kind, 'succeeded', 1, 1, 100, 'done on pod-b', CorrelationId, Instance, CreatedAt, Version + 1 FROM heimdall_job_runs FINAL WHERE Id = {id:String}`,
      { id: alive },
    );
    await watching;
    expect(seen.map((j) => j.status)).toEqual([JobStatus.RUNNING, JobStatus.SUCCEEDED]);
    expect(seen[1]?.message).toBe('done on pod-b');
  }, 120_000);

  it('misfire: after downtime a run-once job runs its missed tick once, a skip job waits for its next tick', async () => {
    const url = ok.url;
    for (const [name, misfire] of [['catch-up', MisfirePolicy.RUN_ONCE], ['no-catch-up', MisfirePolicy.SKIP]] as const) {
      await c.unary(JobService.method.createScheduledJob, { job: { name, schedule: '*/2 * * * * *', kind: 'http-check', params: { url }, misfire } });
    }
    await until(async () => (await runsOf('catch-up')).length > 0 && (await runsOf('no-catch-up')).length > 0, 30_000, 'a first run of each');
    // Down for a few ticks.
    c.close();
    await t.agent.shutdown();
    await sleep(4_500);
    await start();
    // Ticks until the agent is back (its start may take seconds on a loaded machine) were missed.
    const back = Date.now();
    const misfired = await until(async () => (await runsOf('catch-up')).find((r) => r.trigger === JobTrigger.MISFIRE), 30_000, 'the missed tick');
    expect(Number(misfired.scheduledTime?.seconds) * 1000).toBeLessThan(back);
    expect((await runsOf('catch-up')).filter((r) => r.trigger === JobTrigger.MISFIRE).length).toBe(1);
    expect((await runsOf('no-catch-up')).some((r) => r.trigger === JobTrigger.MISFIRE)).toBe(false);
    for (const name of ['catch-up', 'no-catch-up']) await c.unary(JobService.method.deleteScheduledJob, { name });
  }, 120_000);

  it('a forbid job that is running refuses a trigger; a cluster job without redis runs here and /status says so', async () => {
    await c.unary(JobService.method.createScheduledJob, { job: { name: 'slow', schedule: '0 0 1 1 *', kind: 'http-check', params: { url: silent.url, timeout: '60s' }, scope: JobScope.CLUSTER } });
    const first = await c.unary(JobService.method.triggerScheduledJob, { name: 'slow' });
    expect(first.job?.trigger).toBe(JobTrigger.MANUAL);
    const again = await refused(c.unary(JobService.method.triggerScheduledJob, { name: 'slow' }));
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect(again.details).toBe('job slow is running (concurrency forbid); wait for its run to end');
    const scheduler = (await components(t)).find((x) => x.name === 'scheduler');
    expect(scheduler?.state).toBe('degraded');
    expect(scheduler?.reason).toMatch(/no redis configured: 1 cluster-scoped jobs run on this replica/);
    await c.unary(JobService.method.cancelJob, { id: first.job?.id ?? '' });
    await c.unary(JobService.method.deleteScheduledJob, { name: 'slow' });
  });
});

describe('jobs: the system check and readiness', () => {
  it('scores an unreachable redis without failing readiness; a failing check turns the strict readiness off (never the pod readiness), a pause through the API releases it, and the pause outlives a restart', async () => {
    const data = tempDir();
    const redis = { url: `redis://127.0.0.1:${await closedPort()}` };
    const every = '* * * * * *';
    let t = await startTestAgent({ storage: { embedded: { path: data.path } }, jobs: { redis, system_check: { schedule: every } } });
    const check = async () => (await components(t)).find((x) => x.name === 'system-check');
    try {
      const fine = await until(async () => {
        const s = await check();
        return s?.reason.startsWith('score') ? s : undefined;
      }, 10_000, 'a system check');
      expect(fine.state).toBe('ready');
      expect(fine.reason).toMatch(/redis 0 \(not critical\)/);
      expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
      await t.agent.shutdown();

      // A config job whose check counts redis: not ready, with the reason.
      const strict = () => startTestAgent({ storage: { embedded: { path: data.path } }, jobs: { redis, system_check: { enabled: false }, scheduled: [{ name: 'strict-check', schedule: every, kind: 'system-check', params: { critical: ['storage', 'redis'] } }] } });
      t = await strict();
      let c = connect({ addr: t.grpcAddress });
      await until(async () => (await check())?.state === 'failed', 30_000, 'the failing check');
      // The check feeds the strict readiness and /status; the pod stays ready.
      expect((await fetch(`${t.adminUrl}/readyz/strict`)).status).toBe(503);
      expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
      expect((await check())?.reason).toMatch(/is under 50: redis 0 \(unreachable: /);
      await until(async () => (await c.unary(JobService.method.pauseScheduledJob, { name: 'strict-check' }).catch(() => undefined)) ?? false, 30_000, 'the pause');
      expect((await check())?.reason).toBe('no system check is scheduled');
      expect((await fetch(`${t.adminUrl}/readyz/strict`)).status).toBe(200);

      c.close();
      await t.agent.shutdown();
      t = await strict();
      c = connect({ addr: t.grpcAddress });
      const listed = await until(async () => (await c.unary(JobService.method.listScheduledJobs, {}).catch(() => undefined))?.jobs, 30_000, 'the stored jobs to load');
      expect(listed.find((j) => j.name === 'strict-check')?.paused).toBe(true);
      await sleep(1_500);
      expect((await fetch(`${t.adminUrl}/readyz/strict`)).status).toBe(200);
      await c.unary(JobService.method.resumeScheduledJob, { name: 'strict-check' });
      await until(async () => (await check())?.state === 'failed', 30_000, 'the check to fail again');
      c.close();
    } finally {
      await t.agent.shutdown();
      data.cleanup();
    }
  }, 120_000);
});
