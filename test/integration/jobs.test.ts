import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { Concurrency, JobService, JobSource, JobStatus, JobTrigger, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary, promtoolCheck } from '../support/binaries.js';
import { tempDir } from '../support/temp.js';
import { refused, sleep, until } from '../support/wait.js';

// Waits are polls that end as soon as the awaited state is there; on a loaded 2-core machine a run,
// a restart or a stored-jobs load can take many seconds, so every wait and test gets room for that.
vi.setConfig({ testTimeout: 120_000 });

describe('jobs: scheduled jobs end to end (real time, embedded storage)', () => {
  const data = tempDir();
  const exports = tempDir();
  let t: TestAgent;
  let c: AgentClient;
  const start = async () => {
    t = await startTestAgent({ storage: { embedded: { path: data.path } }, jobs: { export_dir: exports.path, system_check: { schedule: '*/1 * * * * *' } } });
    c = connect({ addr: t.grpcAddress });
    // Its own storage path (kept across the restart below): startTestAgent does not wait for it, and
    // jobs load from storage after that. On a loaded machine both take seconds.
    await until(() => c.unary(JobService.method.listScheduledJobs, {}).then(() => true, () => false), 60_000, 'scheduled jobs loaded from storage');
  };
  // What the probe checks: a server that outlives the agent's restart below (the agent's own admin
  // port changes with it).
  const target = createHttpServer((_req, res) => res.end('ok'));
  let targetUrl = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/`;
  });
  beforeAll(start, 120_000);
  afterAll(async () => {
    target.close();
    c.close();
    await t.stop();
    data.cleanup();
    exports.cleanup();
  });

  const runsOf = async (name: string): Promise<Job[]> => (await c.unary(JobService.method.listRuns, { jobName: name, pageSize: 1000 })).runs;
  const scrape = async (): Promise<string> => (await fetch(`${t.adminUrl}/metrics`)).text();
  /** The job families' series of a job on /metrics. */
  const seriesOf = (text: string, name: string): string[] => text.split('\n').filter((l) => /^heimdall_(job|http_check)_/.test(l) && l.includes(`job_name="${name}"`));

  it('runs a job every second, records its runs and their events; pause stops it, resume restarts it, trigger runs it now', async () => {
    const url = targetUrl;
    const created = await c.unary(JobService.method.createScheduledJob, { job: { name: 'probe', schedule: '* * * * * *', kind: 'http-check', params: { url } } });
    expect(created.job?.source).toBe(JobSource.API);
    expect(created.job?.concurrency).toBe(Concurrency.FORBID);
    expect(Number(created.job?.nextRunTime?.seconds) * 1000).toBeGreaterThan(Date.now() - 1000);

    const runs = await until(async () => {
      const r = (await runsOf('probe')).filter((x) => x.status === JobStatus.SUCCEEDED);
      return r.length >= 3 ? r : undefined;
    }, 15_000, 'three succeeded runs');
    for (const r of runs) {
      expect(r.trigger).toBe(JobTrigger.SCHEDULE);
      expect(r.kind).toBe('http-check');
      expect(r.result?.status).toBe(200);
      expect(Number(r.scheduledTime?.seconds)).toBeGreaterThan(0);
    }
    // Ticks are whole seconds, one run each.
    const ticks = runs.map((r) => Number(r.scheduledTime?.seconds));
    expect(new Set(ticks).size).toBe(ticks.length);

    // Each run is a start and a success event from source scheduler, carrying the run's correlation id.
    const one = runs[runs.length - 1] as Job;
    const events = await until(async () => {
      const e = (await c.unary(QueryService.method.listEvents, { correlationId: one.correlationId, sources: ['scheduler'], pageSize: 100 })).events;
      return e.some((x) => x.eventType === 'job.run.succeeded') ? e : undefined;
    }, 10_000, 'run events');
    expect(events.map((e) => e.eventType)).toEqual(expect.arrayContaining(['job.run.started', 'job.run.succeeded', 'http-check.result']));

    await c.unary(JobService.method.pauseScheduledJob, { name: 'probe' });
    const paused = await c.unary(JobService.method.getScheduledJob, { name: 'probe' });
    expect(paused.job?.paused).toBe(true);
    expect(paused.job?.nextRunTime).toBeUndefined();
    // A paused job's series leave /metrics (once a run that was going on has ended).
    await until(async () => seriesOf(await scrape(), 'probe').length === 0, 30_000, 'no probe series while paused');
    await sleep(1_500);
    const before = (await runsOf('probe')).length;
    await sleep(2_500);
    expect((await runsOf('probe')).length).toBe(before);

    const triggered = await c.unary(JobService.method.triggerScheduledJob, { name: 'probe' });
    expect(triggered.job?.trigger).toBe(JobTrigger.MANUAL);
    await until(async () => (await c.unary(JobService.method.getJob, { id: triggered.job?.id ?? '' })).job?.status === JobStatus.SUCCEEDED, 30_000, 'the manual run');

    await c.unary(JobService.method.resumeScheduledJob, { name: 'probe' });
    await until(async () => (await runsOf('probe')).filter((r) => r.trigger === JobTrigger.SCHEDULE).length >= before + 2, 30_000, 'ticks after resume');

    // The metrics say when it runs next and how its runs ended.
    // Resumed and run again, its series are back.
    const metrics = await until(async () => {
      const text = await scrape();
      return /heimdall_http_check_up\{job_name="probe"\} 1/.test(text) ? text : undefined;
    }, 10_000, 'probe series after resume');
    expect(metrics).toMatch(/heimdall_job_next_run_timestamp_seconds\{job_name="probe"\} \d+/);
    expect(metrics).toMatch(/heimdall_job_runs_total\{job_name="probe",kind="http-check",status="succeeded"\} \d+/);

    // A deleted job's series leave /metrics.
    await c.unary(JobService.method.createScheduledJob, { job: { name: 'doomed', schedule: '* * * * * *', kind: 'http-check', params: { url } } });
    await until(async () => seriesOf(await scrape(), 'doomed').length > 0, 30_000, 'doomed series');
    await c.unary(JobService.method.deleteScheduledJob, { name: 'doomed' });
    await until(async () => seriesOf(await scrape(), 'doomed').length === 0, 30_000, 'no doomed series once deleted');
  });

  it('labels job metrics job_name, not job (Prometheus would rename it exported_job), on-demand runs "(on-demand)"; promtool accepts them', async () => {
    const { job } = await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: `${t.adminUrl}/livez` } });
    await until(async () => (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job?.status === JobStatus.SUCCEEDED, 30_000, 'the on-demand probe');
    const text = await scrape();
    const series = text.split('\n').filter((l) => /^heimdall_(job|http_check)_/.test(l) && l.includes('{'));
    expect(series.filter((l) => /[{,](job|exported_job)=/.test(l) || l.includes('job_name=""'))).toEqual([]);
    expect(text).toMatch(/^heimdall_http_check_up\{job_name="\(on-demand\)"\} 1$/m);
    expect(text).toMatch(/^heimdall_job_runs_total\{job_name="\(on-demand\)",kind="http-check",status="succeeded"\} \d+$/m);
    expect(text).toMatch(/^heimdall_job_runs_total\{job_name="system-check",kind="system-check",status="succeeded"\} \d+$/m);
    if (haveBinary('promtool')) expect(promtoolCheck(text)).toBe('exit=0');
  });

  it('the built-in system check scores the agent, reports it in /status and keeps it ready', async () => {
    const status = await until(async () => {
      const s = (await (await fetch(`${t.adminUrl}/status`)).json()) as { components: Array<{ name: string; state: string; reason: string }> };
      const sc = s.components.find((x) => x.name === 'system-check');
      return sc && sc.reason.startsWith('score') ? sc : undefined;
    }, 10_000, 'a system check result');
    expect(status.state).toBe('ready');
    expect(status.reason).toMatch(/^score [\d.]+ \(storage [\d.]+, queue [\d.]+, disk [\d.]+\)/);
    const runs = await runsOf('system-check');
    expect(runs.some((r) => r.status === JobStatus.SUCCEEDED && typeof r.result?.overall === 'number')).toBe(true);
  });

  it('the system check runs stay in job history, not in the events and summary users read by default', async () => {
    await c.unary(JobService.method.pauseScheduledJob, { name: 'probe' });
    onTestFinished(async () => void (await c.unary(JobService.method.resumeScheduledJob, { name: 'probe' })));
    const schedulerEvents = async (): Promise<number> => Number((await c.unary(QueryService.method.getSummary, {})).bySource.find((x) => x.key === 'scheduler')?.count ?? 0);
    // Once the other jobs' last events are in, the summary's count holds still while system checks go on.
    let last = -1;
    const settled = await until(async () => {
      const n = await schedulerEvents();
      if (n === last) return { n };
      last = n;
      await sleep(1_000);
      return undefined;
    }, 30_000, 'the scheduler events to settle');
    const succeeded = async (): Promise<number> => (await runsOf('system-check')).filter((r) => r.status === JobStatus.SUCCEEDED).length;
    const before = await succeeded();
    await until(async () => (await succeeded()) >= before + 3, 30_000, 'three more system checks in history');
    expect(await schedulerEvents()).toBe(settled.n);
    const { events } = await c.unary(QueryService.method.listEvents, { pageSize: 1000 });
    expect(events.filter((e) => e.actorId === 'system-check' || e.message.startsWith('job system-check'))).toEqual([]);
  });

  it('refuses bad jobs with INVALID_ARGUMENT naming the field, and a taken name with ALREADY_EXISTS', async () => {
    const bad = async (job: Record<string, unknown>) => refused(c.unary(JobService.method.createScheduledJob, { job: { name: 'bad', schedule: '* * * * *', kind: 'system-check', ...job } }));
    const cron = await bad({ schedule: '61 * * * *' });
    expect(cron.code).toBe(status.INVALID_ARGUMENT);
    expect(cron.details).toMatch(/^job\.schedule: invalid cron expression "61 \* \* \* \*"/);
    expect((await bad({ timeZone: 'Mars/Olympus' })).details).toMatch(/job\.time_zone: unknown time zone "Mars\/Olympus"/);
    expect((await bad({ kind: 'mine-bitcoin' })).details).toMatch(/job\.kind: unknown task kind "mine-bitcoin"; expected one of system-check, http-check, retention, export/);
    expect((await bad({ kind: 'http-check', params: {} })).details).toMatch(/job\.params\.url: /);
    expect((await bad({ kind: 'export', params: { source: 'events', filters: { service_name: 'x' } } })).details).toMatch(/job\.params\.filters\.service_name: does not apply to source events/);
    expect((await bad({ name: 'no spaces' })).details).toMatch(/job\.name: /);
    const dup = await refused(c.unary(JobService.method.createScheduledJob, { job: { name: 'system-check', schedule: '* * * * *', kind: 'system-check' } }));
    expect(dup.code).toBe(status.ALREADY_EXISTS);
    const cfg = await refused(c.unary(JobService.method.deleteScheduledJob, { name: 'system-check' }));
    expect(cfg.code).toBe(status.FAILED_PRECONDITION);
    expect((await refused(c.unary(JobService.method.getScheduledJob, { name: 'nope' }))).code).toBe(status.NOT_FOUND);
    const submit = await refused(c.unary(JobService.method.submitJob, { kind: 'export', params: { source: 'metrics' } }));
    expect(submit.code).toBe(status.INVALID_ARGUMENT);
    expect(submit.details).toMatch(/job\.params\.source: /);
  });

  // Midway, not within a time: the export stops before its end (progress under 100), however slow the machine.
  it('an export over 1,000,000 rows reports increasing progress and is cancelled midway', async () => {
    const start = Date.now() - 3_600_000;
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_events (Timestamp, Id, EventType, Source, Severity, Message, Payload)
       SELECT fromUnixTimestamp64Milli(toInt64(${start} + number)), toString(number), 'bulk', 'export-test', 2, concat('row ', toString(number)), '{}' FROM numbers(1000000)`,
    );
    const { job } = await c.unary(JobService.method.submitJob, { kind: 'export', params: { source: 'events', filters: { source: 'export-test' }, since: '2h', file: 'bulk.jsonl', chunk_rows: 10_000 } });
    const id = job?.id ?? '';
    const seen: Job[] = [];
    let cancelled: Promise<unknown> | undefined;
    await c.serverStream(JobService.method.watchJob, { id }, (m) => {
      if (!m.job) return;
      seen.push(m.job);
      if (!cancelled && m.job.progress >= 20) {
        cancelled = c.unary(JobService.method.cancelJob, { id });
      }
    });
    await cancelled;
    const last = seen[seen.length - 1] as Job;
    expect(last.status).toBe(JobStatus.CANCELLED);
    const progress = seen.filter((j) => j.status === JobStatus.RUNNING).map((j) => j.progress);
    expect(progress.length).toBeGreaterThan(3);
    for (let i = 1; i < progress.length; i += 1) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1] as number);
    expect(Math.max(...progress)).toBeLessThan(100);
    expect(seen.find((j) => j.status === JobStatus.RUNNING && j.message.startsWith('wrote'))?.message).toMatch(/^wrote \d+ of 1000000 rows$/);
    // Nothing half-written is left behind (the part file goes once the chunk query in flight returns).
    await until(() => readdirSync(exports.path).length === 0, 30_000, 'the part file to be removed').catch(() => undefined);
    expect(readdirSync(exports.path)).toEqual([]);
  }, 120_000); // a million rows written and read back, and a 30 s wait for the part file: more than 30 s on a loaded machine

  it('an export that finishes writes every row, and its run says where', async () => {
    const { job } = await c.unary(JobService.method.submitJob, { kind: 'export', params: { source: 'events', filters: { event_type: 'bulk' }, since: '2h', format: 'csv', file: 'all.csv', chunk_rows: 100_000 } });
    const done = await until(async () => {
      const j = (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job;
      return j && j.status !== JobStatus.PENDING && j.status !== JobStatus.RUNNING ? j : undefined;
    }, 100_000, 'the export');
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.result?.rows).toBe(1_000_000);
    expect(existsSync(join(exports.path, 'all.csv'))).toBe(true);

    // JSON lines, across chunk boundaries, with text that needs escaping.
    const base = Date.now() - 60_000;
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_events (Timestamp, Id, EventType, Source, Severity, Message, Payload)
       SELECT fromUnixTimestamp64Milli(toInt64(${base} + intDiv(number, 2))), concat('e-', toString(number)), 'odd', 'export-json', 3, concat('line 1\nline "2" ', toString(number), ' ✓'), '{"url":"http://x/y"}' FROM numbers(250)`,
    );
    const json = await c.unary(JobService.method.submitJob, { kind: 'export', params: { source: 'events', filters: { source: 'export-json' }, since: '1h', file: 'odd.jsonl', chunk_rows: 100 } });
    await until(async () => (await c.unary(JobService.method.getJob, { id: json.job?.id ?? '' })).job?.status === JobStatus.SUCCEEDED, 30_000, 'the JSON export');
    const text = readFileSync(join(exports.path, 'odd.jsonl'), 'utf8');
    const rows = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    // Two events per millisecond, ordered by (time, id): e-0, e-1, e-2, ...
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 250 }, (_, i) => `e-${i}`));
    expect(rows[0]).toMatchObject({ source: 'export-json', event_type: 'odd', severity: 3, message: 'line 1\nline "2" 0 ✓', payload: '{"url":"http://x/y"}' });
    expect(text).toContain('http://x/y');
  }, 120_000);

  it('fails a job past its timeout with a clear error; a full queue answers RESOURCE_EXHAUSTED', async () => {
    // A server that accepts connections and never answers.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
    onTestFinished(() => void silent.close());
    const slow = await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url, timeout: '5s' }, timeout: { seconds: 1n } });
    const failed = await until(async () => {
      const j = (await c.unary(JobService.method.getJob, { id: slow.job?.id ?? '' })).job;
      return j?.status === JobStatus.FAILED ? j : undefined;
    }, 10_000, 'the timeout');
    expect(failed.error).toBe('timed out after 1000 ms');
    const ids: string[] = [];
    let full: ServiceError | undefined;
    for (let i = 0; i < 200 && !full; i += 1) {
      try {
        ids.push((await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url, timeout: '30s' } })).job?.id ?? '');
      } catch (err) {
        full = err as ServiceError;
      }
    }
    expect(full?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(ids.length).toBe(102); // 2 running (jobs.max_concurrent) + 100 queued (jobs.queue_size)
    for (const id of ids) await c.unary(JobService.method.cancelJob, { id });
    const listed = await c.unary(JobService.method.listJobs, { kind: 'http-check', status: JobStatus.CANCELLED, pageSize: 50 });
    expect(listed.jobs.length).toBe(50);
    expect(listed.nextPageToken).not.toBe('');
    const next = await c.unary(JobService.method.listJobs, { kind: 'http-check', status: JobStatus.CANCELLED, pageSize: 100, pageToken: listed.nextPageToken });
    expect(next.jobs.length).toBe(52);
    expect(new Set([...listed.jobs, ...next.jobs].map((j) => j.id)).size).toBe(102);
  });

  it('retention drops the partitions past retention and reports what it removed', async () => {
    const transport = t.agent.storage.transport;
    await transport.command('SYSTEM STOP TTL MERGES heimdall_events');
    const old = Date.now() - 100 * 86_400_000; // events are kept 90 days by default
    await transport.command(`INSERT INTO heimdall_events (Timestamp, Id, EventType, Source, Severity, Message, Payload) SELECT fromUnixTimestamp64Milli(toInt64(${old} + number)), concat('old-', toString(number)), 'old', 'retention-test', 2, 'old', '{}' FROM numbers(500)`);
    const run = async (dryRun: boolean) => {
      const { job } = await c.unary(JobService.method.submitJob, { kind: 'retention', params: { dry_run: dryRun, tables: ['heimdall_events'] } });
      return until(async () => {
        const j = (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job;
        return j?.status === JobStatus.SUCCEEDED ? j : j?.status === JobStatus.FAILED ? Promise.reject(new Error(j.error)) : undefined;
      }, 20_000, 'the retention run');
    };
    const count = async () => Number((await transport.query<{ n: string }>("SELECT count() AS n FROM heimdall_events WHERE Source = 'retention-test'"))[0]?.n);
    const dry = await run(true);
    const dryTable = (dry.result?.tables as Array<Record<string, unknown>>)[0];
    expect(dryTable).toMatchObject({ table: 'heimdall_events', rows_removed: 500, retention_seconds: 90 * 86_400 });
    expect(await count()).toBe(500);
    const real = await run(false);
    const table = (real.result?.tables as Array<Record<string, unknown>>)[0];
    expect(table).toMatchObject({ table: 'heimdall_events', rows_removed: 500 });
    expect((table?.partitions_dropped as string[]).length).toBe(1);
    expect(Number(table?.bytes_removed)).toBeGreaterThan(0);
    expect(real.message).toMatch(/^dropped 1 partitions \(500 rows\) past retention in 1 tables/);
    expect(await count()).toBe(0);
    // The bulk rows of this hour are untouched.
    expect(Number((await transport.query<{ n: string }>("SELECT count() AS n FROM heimdall_events WHERE Source = 'export-test'"))[0]?.n)).toBe(1_000_000);
  });

  it('keeps API-defined jobs across a restart; a run the agent stopped under is marked interrupted and retried', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void silent.close());
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
    const { job } = await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url, timeout: '60s' }, retry: { attempts: 3 } });
    await until(async () => (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job?.status === JobStatus.RUNNING, 30_000, 'the run to start');
    c.close();
    await t.agent.shutdown();
    const restarted = Date.now();
    await start();
    const interrupted = await until(async () => {
      const j = (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job;
      return j?.status === JobStatus.FAILED ? j : undefined;
    }, 10_000, 'the interrupted run');
    expect(interrupted.error).toMatch(/^interrupted/);
    const retry = (await c.unary(JobService.method.listJobs, { kind: 'http-check', pageSize: 1000 })).jobs.find((j) => j.trigger === JobTrigger.RETRY && j.correlationId === interrupted.correlationId);
    expect(retry?.attempt).toBe(2);
    expect(retry?.status).toBe(JobStatus.RUNNING);
    await c.unary(JobService.method.cancelJob, { id: retry?.id ?? '' });

    const list = await c.unary(JobService.method.listScheduledJobs, {});
    const probe = list.jobs.find((j) => j.name === 'probe');
    expect(probe?.source).toBe(JobSource.API);
    expect(probe?.paused).toBe(false);
    expect(list.jobs.find((j) => j.name === 'system-check')?.source).toBe(JobSource.CONFIG);
    // A run created since the restart succeeded (under load a run may take seconds from its tick to its end).
    await until(async () => (await runsOf('probe')).some((r) => Number(r.createdAt?.seconds) * 1000 >= restarted && r.status === JobStatus.SUCCEEDED), 60_000, 'a run after the restart');
  });
});
