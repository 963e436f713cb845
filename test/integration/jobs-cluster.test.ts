/** Cluster-scoped jobs: two agent processes share a real redis-server; one runs each tick. */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { JobScope, JobService, JobSource, JobStatus, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { startAgentProcess, type AgentProcess } from '../support/agent-process.js';
import { haveBinary } from '../support/binaries.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { tempDir } from '../support/temp.js';
import { sleep } from '../support/wait.js';

function configText(dir: string, name: string, redisUrl: string, probeUrl: string, extraJobs = ''): string {
  return [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" }, ratelimit: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${join(dir, `${name}-data`)}" } }`,
    'shutdown: { drain: 0s }',
    'jobs:',
    `  instance: ${name}`,
    `  redis: { url: "${redisUrl}" }`,
    '  lease_ttl: 2s',
    '  system_check: { enabled: false }',
    '  scheduled:',
    `    - { name: heartbeat, schedule: "* * * * * *", kind: http-check, params: { url: "${probeUrl}" }, scope: cluster }`,
    extraJobs,
  ].join('\n');
}

describe.runIf(haveBinary('redis-server'))('cluster jobs across two agents sharing Redis', () => {
  const dir = tempDir();
  let redis: TestRedis;
  let probe: Server;
  let probeUrl = '';
  let slowUrl = '';
  const agents: Record<string, AgentProcess> = {};
  const clients: Record<string, AgentClient> = {};

  const start = async (name: string, extra = '') => {
    const path = join(dir.path, `${name}.yaml`);
    writeFileSync(path, configText(dir.path, name, redis.url, probeUrl, extra));
    agents[name] = await startAgentProcess(path);
    const c = connect({ addr: agents[name].addr });
    clients[name] = c;
    // Calls on scheduled jobs answer once the stored ones are loaded.
    for (let i = 0; i < 100 && !(await c.unary(JobService.method.listScheduledJobs, {}).catch(() => undefined)); i += 1) await sleep(100);
  };
  const runs = async (name: string, job = 'heartbeat'): Promise<Job[]> => (await clients[name]?.unary(JobService.method.listRuns, { jobName: job, pageSize: 1000 }))?.runs ?? [];
  const alive = (name: string): boolean => agents[name]?.child.exitCode === null && agents[name]?.child.signalCode === null;

  beforeAll(async () => {
    redis = await startRedis();
    // /slow answers after 20 s: a run of a job probing it outlasts many one-second ticks.
    probe = createServer((req, res) => (req.url === '/slow' ? setTimeout(() => res.end('ok'), 20_000).unref() : res.end('ok')));
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/health`;
    slowUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/slow`;
    await Promise.all([start('a'), start('b')]);
  }, 60_000);
  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    await Promise.all(Object.values(agents).map((a) => a.stop()));
    await redis.stop();
    probe.close();
    dir.cleanup();
  });

  it('runs a one-second cluster job exactly once per tick over 12 ticks; killing the lease holder moves it to the other agent', async () => {
    await sleep(14_500);
    const all = [...(await runs('a')), ...(await runs('b'))];
    const byTick = new Map<number, Job[]>();
    for (const r of all) {
      const tick = Number(r.scheduledTime?.seconds);
      byTick.set(tick, [...(byTick.get(tick) ?? []), r]);
    }
    const ticks = [...byTick.keys()].sort((x, y) => x - y);
    // Leave out the first and last tick (agents starting, the listing racing the newest tick).
    const window = ticks.slice(1, -1);
    expect(window.length).toBeGreaterThanOrEqual(12);
    for (let i = 1; i < window.length; i += 1) expect((window[i] as number) - (window[i - 1] as number)).toBe(1);
    for (const t of window) expect(byTick.get(t)?.length, `tick ${t}`).toBe(1);
    for (const r of all) {
      expect(r.fence).toBeGreaterThan(0n);
      expect(r.status === JobStatus.SUCCEEDED || r.status === JobStatus.RUNNING).toBe(true);
    }
    // Fencing tokens grow with every lease: no two runs share one.
    expect(new Set(all.map((r) => r.fence)).size).toBe(all.length);

    // The newest run's agent holds the lease most recently: kill it (no clean shutdown).
    const newest = all.reduce((x, y) => (x.id > y.id ? x : y));
    const holder = newest.instance;
    const other = holder === 'a' ? 'b' : 'a';
    await agents[holder]?.stop('SIGKILL');
    clients[holder]?.close();
    const killedAt = Date.now();
    await sleep(5_000);
    const after = (await runs(other)).filter((r) => Number(r.createdAt?.seconds) * 1000 > killedAt);
    const afterTicks = new Set(after.map((r) => Number(r.scheduledTime?.seconds)));
    expect(afterTicks.size).toBeGreaterThanOrEqual(4);
    expect(after.every((r) => r.instance === other)).toBe(true);
    const statusText = await (await fetch(`http://127.0.0.1:${agents[other]?.ports.admin}/status`)).text();
    expect(statusText).toContain('cluster jobs lease through redis');
  }, 60_000);

  it('a cluster run longer than a tick holds its lease: no other replica runs the job until the holder dies, then the survivor takes over once the lease expires, with a higher fence', async () => {
    for (const name of ['a', 'b']) if (!alive(name)) await start(name);
    const job = { name: 'long', schedule: '* * * * * *', kind: 'http-check', params: { url: slowUrl, timeout: '60s' }, scope: JobScope.CLUSTER };
    for (const name of ['a', 'b']) await clients[name]?.unary(JobService.method.createScheduledJob, { job });
    let first: Job | undefined;
    for (let i = 0; i < 100 && !first; i += 1) {
      await sleep(100);
      first = [...(await runs('a', 'long')), ...(await runs('b', 'long'))].find((r) => r.status === JobStatus.RUNNING);
    }
    if (!first) throw new Error('no run of the long job started');
    const holder = first.instance;
    const other = holder === 'a' ? 'b' : 'a';
    // Three more ticks: the holder skips them (its run is still going), the other agent cannot take the lease.
    await sleep(3_000);
    expect(await runs(other, 'long')).toEqual([]);
    expect((await runs(holder, 'long')).length).toBe(1);

    // Taken before the signal: the holder renews no later than that; when the test sees the exit depends on the machine's load.
    const killedAt = Date.now();
    await agents[holder]?.stop('SIGKILL');
    clients[holder]?.close();
    let taken: Job | undefined;
    for (let i = 0; i < 100 && !taken; i += 1) {
      await sleep(100);
      taken = (await runs(other, 'long')).find((r) => r.status === JobStatus.RUNNING);
    }
    if (!taken) throw new Error('the survivor did not take the job over');
    const startedAt = Number(taken.startedAt?.seconds) * 1000 + (taken.startedAt?.nanos ?? 0) / 1e6;
    // The lease (lease_ttl 2 s, renewed every 0.67 s) outlives its holder by 1.3-2 s; the next tick after that takes it.
    expect(startedAt - killedAt).toBeGreaterThanOrEqual(1_000);
    expect(startedAt - killedAt).toBeLessThan(4_500);
    expect(taken.fence).toBeGreaterThan(first.fence);

    await start(holder);
    for (const name of ['a', 'b']) await clients[name]?.unary(JobService.method.deleteScheduledJob, { name: 'long' });
  }, 60_000);

  it('reloads the config file on SIGHUP: a config job added there is scheduled, one removed is gone', async () => {
    const name = Object.keys(agents).find(alive) ?? 'a';
    writeFileSync(join(dir.path, `${name}.yaml`), configText(dir.path, name, redis.url, probeUrl, `    - { name: nightly, schedule: "0 3 * * *", time_zone: Europe/Oslo, kind: retention }`));
    agents[name]?.child.kill('SIGHUP');
    const listed = async () => (await clients[name]?.unary(JobService.method.listScheduledJobs, {}))?.jobs ?? [];
    let jobs = await listed();
    for (let i = 0; i < 50 && !jobs.some((j) => j.name === 'nightly'); i += 1) {
      await sleep(100);
      jobs = await listed();
    }
    const nightly = jobs.find((j) => j.name === 'nightly');
    expect(nightly?.source).toBe(JobSource.CONFIG);
    expect(nightly?.scope).toBe(JobScope.POD);
    expect(nightly?.timeZone).toBe('Europe/Oslo');
    // An invalid file keeps the running configuration.
    writeFileSync(join(dir.path, `${name}.yaml`), 'jobs: { scheduled: [{ name: x, schedule: "99 * * * *", kind: retention }] }');
    agents[name]?.child.kill('SIGHUP');
    await sleep(500);
    expect((await listed()).map((j) => j.name).sort()).toEqual(['heartbeat', 'nightly']);
    expect(agents[name]?.lines.some((l) => l.msg === 'configuration not reloaded: keeping the running one' && String(l.reason).includes('jobs.scheduled[0].schedule: invalid cron expression'))).toBe(true);
    // Removed from the file: unscheduled.
    writeFileSync(join(dir.path, `${name}.yaml`), configText(dir.path, name, redis.url, probeUrl));
    agents[name]?.child.kill('SIGHUP');
    for (let i = 0; i < 50 && jobs.some((j) => j.name === 'nightly'); i += 1) {
      await sleep(100);
      jobs = await listed();
    }
    expect(jobs.map((j) => j.name)).toEqual(['heartbeat']);
  });
});
