/**
 * QueryService budgets against the real embedded engine: the time limit, the read limits, windows,
 * and fair slots between tenants (one tenant's flood of heavy summaries does not make another
 * tenant's listing wait behind it).
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { encodeCursor } from '../../src/query/cursor.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';
import { refused, until } from '../support/wait.js';

const TOKENS = { a: 'query-token-tenant-a-000001', b: 'query-token-tenant-b-000001' };
const ROWS = 1_000_000;
const MINUTE_NS = 60_000_000_000n;

const ts = (msAgo: number) => {
  const ms = Date.now() - msAgo;
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
};

/** An agent on the shared data directory, with tenant-bound query tokens and the given `query` section. */
function agentWith(path: string, query: Record<string, unknown>): Promise<TestAgent> {
  return startTestAgent({
    storage: { embedded: { path } },
    jobs: { system_check: { enabled: false } },
    auth: {
      enabled: true,
      tokens: [
        { name: 'query-a', token: TOKENS.a, scopes: ['query'], tenant: 'a' },
        { name: 'query-b', token: TOKENS.b, scopes: ['query'], tenant: 'b' },
      ],
    },
    query,
  });
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
    let t: TestAgent;
    beforeAll(async () => {
      t = await agentWith(data.path, { timeout: '1ms' });
    });
    afterAll(async () => t.stop());

    it('ends a storage query that runs past query.timeout with DEADLINE_EXCEEDED naming it', async () => {
      // Counting half a million events by source takes any engine far more than a millisecond.
      const err = await refused(connect({ addr: t.grpcAddress, token: TOKENS.a }).unary(QueryService.method.getSummary, {}));
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect(err.details).toMatch(/^query\.timeout: a storage query ran longer than 1ms \(ClickHouse max_execution_time\)/);
      expect(await t.agent.metrics.getSingleMetricAsString('heimdall_query_refused_total')).toMatch(/heimdall_query_refused_total\{limit="timeout"\} [1-9]/);
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
});
