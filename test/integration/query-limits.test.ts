/**
 * QueryService budgets against the real embedded engine: the time limit, the read limits, windows,
 * and fair slots between tenants (one tenant's flood of heavy summaries does not make another
 * tenant's listing wait behind it).
 */
import { status } from '@grpc/grpc-js';
import type { JsonObject } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { encodeCursor } from '../../src/paging/cursor.js';
import { JobService, JobStatus, type Job } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';
import { refused, until } from '../support/wait.js';

const TOKENS = { a: 'query-token-tenant-a-000001', b: 'query-token-tenant-b-000001', any: 'query-token-no-tenant-00001', admin: 'admin-token-no-tenant-00001' };
const ROWS = 1_000_000;
const MINUTE_NS = 60_000_000_000n;

const ts = (msAgo: number) => {
  const ms = Date.now() - msAgo;
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
};

/** An agent on the shared data directory, with tenant-bound query tokens and the given `query` section. */
function agentWith(path: string, query: Record<string, unknown>, exportDir?: string): Promise<TestAgent> {
  return startTestAgent({
    storage: { embedded: { path } },
    jobs: { system_check: { enabled: false }, ...(exportDir ? { export_dir: exportDir } : {}) },
    auth: {
      enabled: true,
      tokens: [
        { name: 'query-a', token: TOKENS.a, scopes: ['query'], tenant: 'a' },
        { name: 'query-b', token: TOKENS.b, scopes: ['query'], tenant: 'b' },
        { name: 'dashboard', token: TOKENS.any, scopes: ['query'] },
        { name: 'admin', token: TOKENS.admin, scopes: ['admin'] },
      ],
    },
    query,
  });
}

/** Submits an export job and waits for its end. */
async function finished(t: TestAgent, token: string, params: JsonObject): Promise<Job> {
  const c = connect({ addr: t.grpcAddress, token });
  const { job } = await c.unary(JobService.method.submitJob, { kind: 'export', params });
  return until(async () => {
    const j = (await c.unary(JobService.method.getJob, { id: job?.id ?? '' })).job;
    return j && j.status !== JobStatus.PENDING && j.status !== JobStatus.RUNNING ? j : undefined;
  }, 60_000, 'the export');
}

/** Storage queries of QueryService running and waiting now. */
async function slots(t: TestAgent): Promise<{ running: number; queued: number }> {
  const value = async (name: string) => (await t.agent.metrics.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;
  return { running: await value('heimdall_query_running'), queued: await value('heimdall_query_queued') };
}

describe('query budgets', () => {
  const data = tempDir();
  beforeAll(async () => {
    // A million events over the last 50 minutes, half of tenant a, half of tenant b.
    const t = await agentWith(data.path, {});
    await until(() => t.agent.storage.ready, 30_000, 'storage');
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_events (Timestamp, Id, TenantId, EventType, Source, Severity, Category, Message)
       SELECT now64(9) - toIntervalMillisecond(number * 3), toString(generateUUIDv7()), if(number % 2 = 0, 'a', 'b'), 'load', concat('src-', toString(number % 50)), number % 6 + 1, 'test', concat('message ', toString(number))
       FROM numbers({rows:UInt64})`,
      { rows: ROWS },
    );
    await t.stop();
  });
  afterAll(() => data.cleanup());

  describe('read limits and windows', () => {
    let t: TestAgent;
    beforeAll(async () => {
      t = await agentWith(data.path, { max_rows_to_read: 200_000, default_window: '2h', max_window: '2d' });
    });
    afterAll(async () => t.stop());

    it('ends a summary that would read more rows than query.max_rows_to_read with RESOURCE_EXHAUSTED naming it', async () => {
      const err = await refused(connect({ addr: t.grpcAddress, token: TOKENS.a }).unary(QueryService.method.getSummary, {}));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain('query.max_rows_to_read');
      expect(err.details).toContain('200000 rows');
      // The agent goes on serving: a first page reads the newest granules only.
      const page = await connect({ addr: t.grpcAddress, token: TOKENS.b }).unary(QueryService.method.listEvents, { pageSize: 10 });
      expect(page.events).toHaveLength(10);
      expect(page.events.every((e) => e.tenantId === 'b')).toBe(true);
      const metrics = await t.agent.metrics.getSingleMetricAsString('heimdall_query_refused_total');
      expect(metrics).toMatch(/heimdall_query_refused_total\{limit="max_rows_to_read"\} [1-8]$/m);
    });

    it('refuses a window wider than query.max_window with INVALID_ARGUMENT naming the field and the limit, also in a forged page token', async () => {
      const c = connect({ addr: t.grpcAddress, token: TOKENS.a });
      const allTime = await refused(c.unary(QueryService.method.getSummary, { startTime: { seconds: 0n, nanos: 0 } }));
      expect(allTime.code).toBe(status.INVALID_ARGUMENT);
      expect(allTime.details).toMatch(/^start_time: the window is at most 2d \(query\.max_window\), got \d{5}\.\dd/);
      const week = await refused(c.unary(QueryService.method.listEvents, { startTime: ts(7 * 86_400_000) }));
      expect(week.details).toMatch(/^start_time: the window is at most 2d \(query\.max_window\), got 7\.0d/);
      // A page token carries its range; a forged one is held to the same limit.
      const first = await c.unary(QueryService.method.listEvents, { pageSize: 1 });
      const real = JSON.parse(Buffer.from(first.nextPageToken, 'base64url').toString()) as string[];
      const forged = encodeCursor({ start: '0', end: real[2] ?? '', lastTime: real[3] ?? '', lastId: real[4] ?? '', filters: real[5] ?? '' });
      const paged = await refused(c.unary(QueryService.method.listEvents, { pageSize: 1, pageToken: forged }));
      expect(paged.code).toBe(status.INVALID_ARGUMENT);
      expect(paged.details).toMatch(/^page_token: the window is at most 2d \(query\.max_window\)/);
    });

    it('reads query.default_window when a listing has no start_time', async () => {
      const c = connect({ addr: t.grpcAddress, token: TOKENS.a });
      const first = await c.unary(QueryService.method.listEvents, { pageSize: 1 });
      const [, start, end] = JSON.parse(Buffer.from(first.nextPageToken, 'base64url').toString()) as string[];
      expect(BigInt(end ?? 0) - BigInt(start ?? 0)).toBe(120n * MINUTE_NS);
    });
  });

  describe('time limit', () => {
    const exports = tempDir();
    let t: TestAgent;
    beforeAll(async () => {
      t = await agentWith(data.path, { timeout: '1ms' }, exports.path);
    });
    afterAll(async () => {
      await t.stop();
      exports.cleanup();
    });

    it('ends a storage query that runs past query.timeout with DEADLINE_EXCEEDED naming it', async () => {
      // Counting half a million events by source takes any engine far more than a millisecond.
      const err = await refused(connect({ addr: t.grpcAddress, token: TOKENS.a }).unary(QueryService.method.getSummary, {}));
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect(err.details).toMatch(/^query\.timeout: a storage query ran longer than 1ms \(ClickHouse max_execution_time\)/);
      expect(await t.agent.metrics.getSingleMetricAsString('heimdall_query_refused_total')).toMatch(/heimdall_query_refused_total\{limit="timeout"\} [1-9]/);
    });

    it("runs an export job's storage queries under query.timeout too, failing the run with a message naming it", async () => {
      const job = await finished(t, TOKENS.admin, { source: 'events', since: '1h', tenant: 'a', file: 'slow.jsonl' });
      expect(job.status).toBe(JobStatus.FAILED);
      expect(job.error).toMatch(/^query\.timeout: a storage query ran longer than 1ms \(ClickHouse max_execution_time\)/);
      expect(await t.agent.metrics.getSingleMetricAsString('heimdall_export_refused_total')).toMatch(/heimdall_export_refused_total\{limit="timeout"\} 1$/m);
    });
  });

  describe('fair slots between tenants', () => {
    let t: TestAgent;
    beforeAll(async () => {
      t = await agentWith(data.path, { max_concurrent: 1, max_concurrent_per_tenant: 1, max_queued_per_tenant: 100 });
    });
    afterAll(async () => t.stop());

    it("runs another tenant's listing after at most the query already running, not behind a flood of heavy summaries", async () => {
      const a = connect({ addr: t.grpcAddress, token: TOKENS.a });
      const b = connect({ addr: t.grpcAddress, token: TOKENS.b });
      const FLOOD = 6;
      let summariesDone = 0;
      // Tenant a: six 24-hour summaries at once (8 storage queries each, all over 500k rows).
      const flood = Array.from({ length: FLOOD }, () => a.unary(QueryService.method.getSummary, {}).then(() => void (summariesDone += 1)));
      // Wait until every summary has reached the agent (its handler has issued its storage queries).
      const started = async () => {
        const metric = await t.agent.metrics.getSingleMetric('heimdall_grpc_server_started_total')?.get();
        return metric?.values.find((v) => v.labels.grpc_method === 'GetSummary')?.value ?? 0;
      };
      await until(async () => (await started()) >= FLOOD, 15_000, 'the summaries to start');
      const pendingAtSend = FLOOD - summariesDone;
      // The flood must still be under way for the comparison to mean anything.
      expect(pendingAtSend).toBeGreaterThanOrEqual(3);
      const doneAtSend = summariesDone;
      const page = await b.unary(QueryService.method.listEvents, { pageSize: 10 });
      const finishedMeanwhile = summariesDone - doneAtSend;
      expect(page.events).toHaveLength(10);
      // Tenant b waited for at most the one query of tenant a that was running: at most one summary
      // could complete meanwhile (before, b's query queued behind every query of the flood).
      expect(finishedMeanwhile).toBeLessThanOrEqual(1);
      await Promise.all(flood);
      expect(summariesDone).toBe(FLOOD);
    });
  });
  describe('whose turn a query takes', () => {
    let t: TestAgent;
    beforeAll(async () => {
      t = await agentWith(data.path, { max_concurrent: 2, max_concurrent_per_tenant: 1, max_queued_per_tenant: 2 });
    });
    afterAll(async () => t.stop());

    /**
     * Six listings from the untenanted token, naming `tenants` in turn. Each reads most of the hour:
     * the text is in a few old rows, and its n-grams in every granule, so the index skips little.
     */
    const flood = (tenants: string[]) => {
      const c = connect({ addr: t.grpcAddress, token: TOKENS.any });
      return Array.from({ length: 6 }, (_, i) =>
        c.unary(QueryService.method.listEvents, { tenantId: tenants[i % tenants.length] ?? '', messageContains: 'message 99999' }).then(
          () => 'ok' as const,
          (err: { code: status; details: string }) => err,
        ),
      );
    };
    const refusals = (outcomes: Array<'ok' | { code: status; details: string }>) => outcomes.filter((o) => o !== 'ok');

    it('keys a token without a tenant on the token, so it does not use up the quota of the tenant it names', async () => {
      const b = connect({ addr: t.grpcAddress, token: TOKENS.b });
      await b.unary(QueryService.method.listEvents, { pageSize: 1 }); // connected before the flood
      const results = flood(['b']);
      // Once the flood fills its queue (one running, two waiting; the rest refused), the tenant asks.
      // Before, the flood took tenant b's turns, and b's own query was refused.
      for (let i = 0; i < 3000 && (await slots(t)).queued < 2; i++) await new Promise((r) => setTimeout(r, 5));
      const own = await b.unary(QueryService.method.listEvents, { pageSize: 5 });
      expect(own.events).toHaveLength(5);
      for (const o of refusals(await Promise.all(results))) {
        expect(o).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/^too many queries from token "dashboard": 1 running and 2 waiting \(query\.max_concurrent_per_tenant 1, query\.max_queued_per_tenant 2\)/) as unknown });
      }
    });

    it('holds a token without a tenant to one queue, whatever tenants it names', async () => {
      const refused = refusals(await Promise.all(flood(['b', 'c', 'd', 'e', 'f', 'g'])));
      // Before, each tenant named had a queue of its own: nothing was refused.
      expect(refused.length).toBeGreaterThanOrEqual(1);
      for (const o of refused) expect(o).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: expect.stringContaining('from token "dashboard"') as unknown });
    });
  });
});

describe('a summary over a million distinct sources', () => {
  const UNIQUE = 1_000_000;
  const data = tempDir();
  let t: TestAgent;
  beforeAll(async () => {
    // Tenant a: a million error events over the last 50 minutes, each from a source of its own.
    t = await agentWith(data.path, { max_memory: '64MiB' });
    await until(() => t.agent.storage.ready, 30_000, 'storage');
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_events (Timestamp, Id, TenantId, EventType, Source, Severity, Category, Message)
       SELECT now64(9) - toIntervalMillisecond(number * 3), toString(generateUUIDv7()), 'a', 'load', concat('src-', toString(number), '-', repeat('x', 40)), 5, 'test', 'm'
       FROM numbers({rows:UInt64})`,
      { rows: UNIQUE },
    );
  });
  afterAll(async () => {
    await t.stop();
    data.cleanup();
  });

  /** A GetSummary of tenant a, with the agent's RSS growth (peak, sampled every 20 ms) while it runs. */
  const summary = async (req: Record<string, unknown>) => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const reply = await connect({ addr: t.grpcAddress, token: TOKENS.a }).unary(QueryService.method.getSummary, req).then((r) => r, (err: { code: status; details: string }) => err);
      return { reply, growthMiB: (peak - before) / 1048576 };
    } finally {
      clearInterval(sampler);
    }
  };

  it('stops a grouping that needs more than query.max_memory with RESOURCE_EXHAUSTED naming it, and the agent stays small', async () => {
    const { reply, growthMiB } = await summary({});
    expect(reply).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/^query\.max_memory: a storage query needed more than 64MiB of memory \(ClickHouse max_memory_usage\)/) as unknown });
    // Before: the whole grouping came back (a 57 MB reply) and RSS grew by 450 MB or more.
    expect(growthMiB).toBeLessThan(200);
    expect(await t.agent.metrics.getSingleMetricAsString('heimdall_query_refused_total')).toMatch(/heimdall_query_refused_total\{limit="max_memory"\} [1-9]/);
  });

  it('lists the `top` most frequent keys of each breakdown and sums the rest under __other__', async () => {
    // Five minutes: 100,000 distinct sources, well within the memory limit.
    const start = Date.now() - 300_000;
    const { reply } = await summary({ startTime: { seconds: BigInt(Math.floor(start / 1000)), nanos: 0 }, top: 10 });
    if (!('bySource' in reply)) throw new Error(`summary refused: ${reply.details}`);
    const n = Number(reply.events);
    expect(n).toBeGreaterThan(90_000);
    expect(reply.bySource).toHaveLength(11);
    expect(reply.bySource.slice(0, 10).every((c) => c.count === 1n && c.key.startsWith('src-'))).toBe(true);
    expect(reply.bySource[10]).toEqual(expect.objectContaining({ key: '__other__', count: BigInt(n - 10) }));
    expect(reply.topErrorSources).toHaveLength(10);
    expect(reply.byEventType.map((c) => [c.key, c.count])).toEqual([['load', BigInt(n)]]);
  });
});
