/** Events, queries and access control end to end against a running agent with embedded storage. */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { BadRequestSchema } from '../../src/gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { EventService, Severity, type Event } from '../../src/gen/heimdall/v1/events_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { ExportLogsServiceRequestSchema, LogsService } from '../../src/gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import { ExportTraceServiceRequestSchema, TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { uuidv7 } from '../../src/ids/uuidv7.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { processTimeout, runCli } from '../support/cli.js';


type EventInit = Partial<Omit<Event, '$typeName' | 'timestamp'>> & { timestamp?: { seconds: bigint; nanos: number } };

const secondsAgo = (s: number) => {
  const ms = Date.now() - s * 1000;
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
};
const ev = (over: EventInit = {}): EventInit => ({ eventType: 'deploy', source: 'svc-a', severity: Severity.INFO, message: 'hello', ...over });

async function write(c: AgentClient, events: EventInit[], md?: Record<string, string>) {
  return c.unary(EventService.method.writeEvents, { events: events }, md);
}

/** Every page of ListEvents for a request, concatenated. */
async function listAll(c: AgentClient, req: Record<string, unknown>, pageSize = 1000) {
  const out: Event[] = [];
  let pageToken = '';
  do {
    const res = await c.unary(QueryService.method.listEvents, { ...req, pageSize, pageToken });
    out.push(...res.events);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

const grpcError = async (p: Promise<unknown>): Promise<ServiceError> => {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail');
};

describe('events and queries', () => {
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    // No periodic system check: its run events would land between a listing and a summary compared below.
    t = await startTestAgent({ events: { max_payload: '1KiB' }, jobs: { system_check: { enabled: false } } });
    c = connect({ addr: t.grpcAddress });
  });
  afterAll(async () => {
    c.close();
    await t.stop();
  });

  it('stores valid events of a batch, reports the invalid ones by index and field, and fills ids', async () => {
    const res = await write(
      c,
      [
        ev({ message: 'first', payload: { user: 'ann', password: 'hunter2-secret', nested: { api_key: 'k-123456789012', n: 3 } } }),
        ev({ source: '' }),
        ev({ severity: 42 as Severity }),
        ev({ payload: { blob: 'x'.repeat(2000) } }),
        ev({ traceId: 'not-hex' }),
        ev({ id: 'my-own-id', message: 'second' }),
      ],
      { 'x-correlation-id': 'corr-fill-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    );
    expect(res.accepted).toBe(2);
    expect(res.rejected).toBe(4);
    expect(res.errors.map((e) => [e.index, e.field])).toEqual([
      [1, 'events[1].source'],
      [2, 'events[2].severity'],
      [3, 'events[3].payload'],
      [4, 'events[4].trace_id'],
    ]);
    expect(res.errors[1]?.message).toContain('unknown severity 42');
    expect(res.ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(res.ids[1]).toBe('my-own-id');
    const stored = await listAll(c, { correlationId: 'corr-fill-1' });
    expect(stored.map((e) => e.id).sort()).toEqual([...res.ids].sort());
    const first = stored.find((e) => e.message === 'first');
    expect(first?.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(first?.spanId).toBe('b7ad6b7169203331');
    expect(first?.payload).toEqual({ user: 'ann', password: '[REDACTED]', nested: { api_key: '[REDACTED]', n: 3 } });
  });

  it('refuses a batch whose every event is invalid with INVALID_ARGUMENT and field violations', async () => {
    const err = await grpcError(write(c, [ev({ eventType: '' }), ev({ severity: Severity.UNSPECIFIED })]));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('events[0].event_type: is required');
    const st = fromBinary(StatusSchema, err.metadata.get('grpc-status-details-bin')[0] as Buffer);
    const bad = st.details[0] ? anyUnpack(st.details[0], BadRequestSchema) : undefined;
    expect(bad?.fieldViolations.map((v) => v.field)).toEqual(['events[0].event_type', 'events[1].severity']);
  });

  it('streams batches and sums them up', async () => {
    // A real grpc-js client stream of 5 batches of 200 (one event invalid).
    const raw = new Client(t.grpcAddress, credentials.createInsecure());
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const call = raw.makeClientStreamRequest(
        '/heimdall.v1.EventService/StreamEvents',
        (b: Buffer) => b,
        (b: Buffer) => b,
        new Metadata(),
        (err, value) => (err || !value ? reject(err ?? new Error('no reply')) : resolve(value)),
      );
      for (let b = 0; b < 5; b++) {
        const events = Array.from({ length: 200 }, (_, i) => ev({ source: 'streamer', message: `m-${b}-${i}`, ...(b === 4 && i === 0 ? { severity: Severity.UNSPECIFIED } : {}) }));
        call.write(Buffer.from(toBinary(EventService.method.streamEvents.input, create(EventService.method.streamEvents.input, { events: events as never }))));
      }
      call.end();
    });
    raw.close();
    const res = fromBinary(EventService.method.streamEvents.output, reply);
    expect(res.accepted).toBe(999);
    expect(res.rejected).toBe(1);
    expect(res.errors[0]?.index).toBe(800);
    expect(res.ids).toHaveLength(999);
    expect((await listAll(c, { sources: ['streamer'] })).length).toBe(999);
  });

  it('filters by every field, and takes injection attempts in string filters literally', async () => {
    const nasty = ["x' OR '1'='1", "'); DROP TABLE heimdall_events; --", '{id:String}', 'a\\', '%_%'];
    const events: EventInit[] = [];
    for (let i = 0; i < 60; i++) {
      events.push(
        ev({
          eventType: ['login', 'logout', 'deploy'][i % 3],
          source: `filter-src-${i % 4}`,
          severity: ((i % 6) + 1) as Severity,
          category: ['auth', 'ops'][i % 2],
          correlationId: `filter-corr-${i % 5}`,
          tenantId: `tenant-${i % 2}`,
          actorId: `actor-${i % 7}`,
          status: ['ok', 'failed'][i % 2],
          message: i % 10 === 0 ? `Needle in HAY ${i}` : `plain ${i}`,
          timestamp: secondsAgo(60 + i),
        }),
      );
    }
    nasty.forEach((s, i) => events.push(ev({ source: s, eventType: s, category: s, correlationId: s, actorId: s, status: s, tenantId: s, message: `nasty ${s}`, timestamp: secondsAgo(30 + i) })));
    expect((await write(c, events)).accepted).toBe(events.length);
    const range = { startTime: secondsAgo(200) };
    const check = async (req: Record<string, unknown>, keep: (e: EventInit) => boolean) => {
      const got = await listAll(c, { ...range, ...req }, 7);
      const want = events.filter(keep).map((e) => e.message).sort();
      expect(got.map((e) => e.message).sort(), JSON.stringify(req, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toEqual(want);
    };
    const ours = (e: EventInit) => e.source?.startsWith('filter-src-') ?? false;
    await check({ sources: ['filter-src-1', 'filter-src-2'] }, (e) => e.source === 'filter-src-1' || e.source === 'filter-src-2');
    await check({ sources: ['filter-src-0'], eventTypes: ['login'] }, (e) => e.source === 'filter-src-0' && e.eventType === 'login');
    await check({ sources: ['filter-src-3'], minSeverity: Severity.ERROR }, (e) => e.source === 'filter-src-3' && (e.severity ?? 0) >= Severity.ERROR);
    await check({ categories: ['auth'], correlationId: 'filter-corr-2' }, (e) => ours(e) && e.category === 'auth' && e.correlationId === 'filter-corr-2');
    await check({ tenantId: 'tenant-1', actorId: 'actor-3' }, (e) => e.tenantId === 'tenant-1' && e.actorId === 'actor-3');
    await check({ status: 'failed', sources: ['filter-src-1'] }, (e) => e.status === 'failed' && e.source === 'filter-src-1');
    await check({ messageContains: 'needle in hay' }, (e) => /needle in hay/i.test(e.message ?? ''));
    for (const s of nasty) {
      for (const key of ['sources', 'eventTypes', 'categories'] as const) await check({ [key]: [s] }, (e) => e.source === s);
      for (const key of ['correlationId', 'actorId', 'status', 'tenantId'] as const) await check({ [key]: s }, (e) => e.source === s);
      await check({ messageContains: `nasty ${s}` }, (e) => e.message === `nasty ${s}`);
    }
    // A time range excludes what lies outside it.
    const ns = (ts: { seconds: bigint; nanos: number } | undefined) => (ts?.seconds ?? 0n) * 1_000_000_000n + BigInt(ts?.nanos ?? 0);
    const [from, to] = [secondsAgo(90), secondsAgo(70)];
    await check({ sources: ['filter-src-0'], startTime: from, endTime: to }, (e) => e.source === 'filter-src-0' && ns(e.timestamp) >= ns(from) && ns(e.timestamp) < ns(to));
  });

  it('pages through 10,000 events newest first without loss or repeat while writes continue', async () => {
    const ids: string[] = [];
    for (let b = 0; b < 10; b++) {
      const batch = Array.from({ length: 1000 }, (_, i) => ev({ source: 'pager', timestamp: secondsAgo(1800 - (b * 1000 + i) * 0.1), message: `p-${b * 1000 + i}` }));
      ids.push(...(await write(c, batch)).ids);
    }
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing && n < 50; n++) await write(c, Array.from({ length: 50 }, () => ev({ source: 'pager', message: 'late' })));
    })();
    const seen: string[] = [];
    let pageToken = '';
    let previous: bigint | undefined;
    do {
      const res = await c.unary(QueryService.method.listEvents, { sources: ['pager'], startTime: secondsAgo(3600), pageSize: 500, pageToken });
      for (const e of res.events) {
        const ns = (e.timestamp?.seconds ?? 0n) * 1_000_000_000n + BigInt(e.timestamp?.nanos ?? 0);
        if (previous !== undefined) expect(ns <= previous).toBe(true);
        previous = ns;
        seen.push(e.id);
      }
      pageToken = res.nextPageToken;
    } while (pageToken);
    writing = false;
    await writer;
    const original = new Set(ids);
    const fromOriginal = seen.filter((id) => original.has(id));
    expect(new Set(seen).size).toBe(seen.length);
    expect(fromOriginal.length).toBe(10_000);
  }, 60_000);

  it('returns one timeline of the spans, logs and events of a trace, by trace id and by correlation id', async () => {
    const traceId = Buffer.from(uuidv7().replace(/-/g, ''), 'hex');
    const hex = traceId.toString('hex');
    const id = (n: number) => Buffer.from([0, 0, 0, 0, 0, 0, 1, n]);
    const now = BigInt(Date.now()) * 1_000_000n;
    const span = (n: number, parent: number | undefined, startMs: number, durMs: number) => ({
      traceId,
      spanId: id(n),
      parentSpanId: parent === undefined ? new Uint8Array() : id(parent),
      name: `op-${n}`,
      kind: 2,
      startTimeUnixNano: now + BigInt(startMs) * 1_000_000n,
      endTimeUnixNano: now + BigInt(startMs + durMs) * 1_000_000n,
    });
    const resource = (service: string) => ({ attributes: [{ key: 'service.name', value: { value: { case: 'stringValue' as const, value: service } } }] });
    const traces = create(ExportTraceServiceRequestSchema, {
      resourceSpans: [
        { resource: resource('front'), scopeSpans: [{ spans: [span(1, undefined, 0, 100), span(2, 1, 10, 50)] }] },
        { resource: resource('back'), scopeSpans: [{ spans: [span(3, 2, 20, 20)] }] },
      ],
    });
    await c.unary(TraceService.method.export, traces);
    const logs = create(ExportLogsServiceRequestSchema, {
      resourceLogs: [{ resource: resource('back'), scopeLogs: [{ logRecords: [{ timeUnixNano: now + 25_000_000n, severityText: 'WARN', severityNumber: 13, body: { value: { case: 'stringValue', value: 'slow query' } }, traceId, spanId: id(3) }] }] }],
    });
    await c.unary(LogsService.method.export, logs);
    const at = (ms: number) => ({ seconds: (now + BigInt(ms) * 1_000_000n) / 1_000_000_000n, nanos: Number((now + BigInt(ms) * 1_000_000n) % 1_000_000_000n) });
    await write(c, [ev({ source: 'back', eventType: 'cache.miss', traceId: hex, spanId: id(3).toString('hex'), correlationId: 'order-77', timestamp: at(30) })]);
    await write(c, [ev({ source: 'front', eventType: 'order.placed', correlationId: 'order-77', traceId: hex, timestamp: at(5) })]);

    const byTrace = await c.unary(QueryService.method.getTrace, { id: { case: 'traceId', value: hex } });
    expect(byTrace.spanCount).toBe(3);
    expect(byTrace.logCount).toBe(1);
    expect(byTrace.eventCount).toBe(2);
    // Tree order: op-3's log and event under it; the event naming no span after the root's subtree.
    expect(byTrace.items.map((i) => (i.item.case === 'span' ? i.item.value.name : i.item.case === 'event' ? i.item.value.eventType : i.item.case))).toEqual(['op-1', 'op-2', 'op-3', 'log', 'cache.miss', 'order.placed']);
    const depths = byTrace.items.flatMap((i) => (i.item.case === 'span' ? [[i.item.value.name, i.item.value.depth, i.item.value.serviceName]] : []));
    expect(depths).toEqual([
      ['op-1', 0, 'front'],
      ['op-2', 1, 'front'],
      ['op-3', 2, 'back'],
    ]);
    const byCorrelation = await c.unary(QueryService.method.getTrace, { id: { case: 'correlationId', value: 'order-77' } });
    expect(byCorrelation.traceIds).toEqual([hex]);
    expect([byCorrelation.spanCount, byCorrelation.logCount, byCorrelation.eventCount]).toEqual([3, 1, 2]);
    const err = await grpcError(c.unary(QueryService.method.getTrace, { id: { case: 'traceId', value: "x' OR 1=1" } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });

  it('lists OTLP log records by service, severity, trace id and body text, page by page', async () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const traceId = Buffer.alloc(16, 7);
    const records = Array.from({ length: 40 }, (_, i) => ({
      service: i % 2 === 0 ? 'logs-a' : 'logs-b',
      severityNumber: (i % 24) + 1,
      body: i % 5 === 0 ? `ERROR Disk Full on /dev/sd${i}` : `line ${i}`,
      traceId: i % 8 === 0 ? traceId : new Uint8Array(),
      timeUnixNano: now - BigInt(i) * 1_000_000n,
    }));
    const resource = (service: string) => ({ attributes: [{ key: 'service.name', value: { value: { case: 'stringValue' as const, value: service } } }] });
    await c.unary(
      LogsService.method.export,
      create(ExportLogsServiceRequestSchema, {
        resourceLogs: ['logs-a', 'logs-b'].map((service) => ({
          resource: resource(service),
          scopeLogs: [
            {
              logRecords: records
                .filter((r) => r.service === service)
                .map((r) => ({ timeUnixNano: r.timeUnixNano, severityNumber: r.severityNumber, body: { value: { case: 'stringValue' as const, value: r.body } }, traceId: r.traceId })),
            },
          ],
        })),
      }),
    );
    const all = async (req: Record<string, unknown>) => {
      const out: string[] = [];
      let pageToken = '';
      do {
        const res = await c.unary(QueryService.method.listLogs, { ...req, services: (req.services as string[] | undefined) ?? ['logs-a', 'logs-b'], pageSize: 7, pageToken });
        out.push(...res.records.map((r) => r.body));
        pageToken = res.nextPageToken;
      } while (pageToken);
      return out;
    };
    const newestFirst = [...records].sort((a, b) => Number(b.timeUnixNano - a.timeUnixNano));
    expect(await all({})).toEqual(newestFirst.map((r) => r.body));
    expect(await all({ services: ['logs-b'] })).toEqual(newestFirst.filter((r) => r.service === 'logs-b').map((r) => r.body));
    expect(await all({ minSeverityNumber: 17 })).toEqual(newestFirst.filter((r) => r.severityNumber >= 17).map((r) => r.body));
    expect(await all({ traceId: traceId.toString('hex') })).toEqual(newestFirst.filter((r) => r.traceId.length > 0).map((r) => r.body));
    expect(await all({ bodyContains: 'disk full' })).toEqual(newestFirst.filter((r) => r.body.startsWith('ERROR')).map((r) => r.body));
    expect(await all({ bodyContains: "' OR 1=1 --" })).toEqual([]);
  });

  it('answers through the CLI: emit, events, trace and summary, as tables or JSON lines', async () => {
    const cli = (...args: string[]) => runCli([...args, '--addr', t.grpcAddress]);
    const emitted = await cli('emit', '--type', 'cli.test', '--severity', 'warning', '--message', 'from the CLI', '--source', 'cli-src', '--payload', '{"k":"v"}', '--correlation-id', 'cli-corr', '--json');
    const { id } = JSON.parse(emitted.stdout) as { id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    // The reads do not depend on each other: started together, they share the cores instead of queueing.
    const [json, table, errors, trace, summary, bad] = await Promise.all([
      cli('events', '--source', 'cli-src', '--json'),
      cli('events', '--source', 'cli-src', '--severity', 'warning'),
      cli('events', '--source', 'cli-src', '--severity', 'error'),
      cli('trace', 'cli-corr'),
      cli('summary', '--since', '1h', '--top', '100'),
      cli('events', '--since', 'yesterday'),
    ]);
    expect(json.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([expect.objectContaining({ id, eventType: 'cli.test', severity: 'SEVERITY_WARNING', message: 'from the CLI', payload: { k: 'v' } })]);
    expect(table.stdout.split('\n')[0]).toMatch(/^TIME\s+SEVERITY\s+SOURCE\s+TYPE\s+CORRELATION ID\s+MESSAGE$/);
    expect(table.stdout).toMatch(/warning\s+cli-src\s+cli\.test\s+cli-corr\s+from the CLI/);
    expect(errors.stdout.trim().split('\n')).toHaveLength(1);
    expect(trace.stdout).toContain('0 spans, 0 logs, 1 events');
    expect(trace.stdout).toContain('event warning cli-src/cli.test: from the CLI');
    expect(summary.stdout).toMatch(/events, error rate \d+\.\d+%/);
    expect(summary.stdout).toMatch(/cli-src\s+1/);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--since: expected a duration');
  }, processTimeout(7));

  it('summarises a window with the same numbers as counting the events independently', async () => {
    const start = secondsAgo(3600);
    const all = await listAll(c, { startTime: start });
    const res = await c.unary(QueryService.method.getSummary, { startTime: start, top: 100 });
    expect(Number(res.events)).toBe(all.length);
    const count = (key: (e: Event) => string) => {
      const m = new Map<string, number>();
      for (const e of all) m.set(key(e), (m.get(key(e)) ?? 0) + 1);
      return m;
    };
    const names = ['', 'debug', 'info', 'notice', 'warning', 'error', 'critical'];
    expect(new Map(res.bySeverity.map((x) => [x.key, Number(x.count)]))).toEqual(count((e) => names[e.severity] ?? ''));
    expect(new Map(res.bySource.map((x) => [x.key, Number(x.count)]))).toEqual(count((e) => e.source));
    expect(new Map(res.byEventType.map((x) => [x.key, Number(x.count)]))).toEqual(count((e) => e.eventType));
    expect(new Map(res.byCategory.map((x) => [x.key, Number(x.count)]))).toEqual(count((e) => e.category));
    const errors = all.filter((e) => e.severity >= Severity.ERROR);
    expect(res.errorRate).toBeCloseTo(errors.length / all.length, 10);
    const bySource = [...count((e) => e.source).keys()].map((s) => [s, errors.filter((e) => e.source === s).length] as const).filter(([, n]) => n > 0);
    bySource.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    // With top 3, each breakdown lists its three most frequent keys (by count, then key) and sums the rest as __other__.
    const top3 = await c.unary(QueryService.method.getSummary, { startTime: start, top: 3 });
    const topped = (m: Map<string, number>) => {
      const sorted = [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
      const rest = sorted.slice(3).reduce((sum, [, n]) => sum + n, 0);
      return [...sorted.slice(0, 3), ...(rest > 0 ? [['__other__', rest]] : [])];
    };
    expect(top3.bySource.map((x) => [x.key, Number(x.count)])).toEqual(topped(count((e) => e.source)));
    expect(top3.byEventType.map((x) => [x.key, Number(x.count)])).toEqual(topped(count((e) => e.eventType)));
    expect(top3.byCategory.map((x) => [x.key, Number(x.count)])).toEqual(topped(count((e) => e.category)));
    expect(top3.topErrorSources.map((x) => [x.key, Number(x.count)])).toEqual(bySource.slice(0, 3));
    expect(top3.services.length).toBeLessThanOrEqual(4);
    const records = (list: typeof res.services) => list.reduce((sum, s) => sum + s.spans + s.logs, 0n);
    expect(records(top3.services)).toBe(records(res.services));
    const front = res.services.find((s) => s.serviceName === 'front');
    const back = res.services.find((s) => s.serviceName === 'back');
    expect([Number(front?.spans), Number(back?.spans), Number(back?.logs)]).toEqual([2, 1, 1]);
  });
});
