import { toJson } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import { LogRecordSchema, QueryService, ServiceOperationsSchema, SpanStatus, TraceSummarySchema, type TraceSummary } from '../gen/heimdall/v1/query_pb.js';
import { ago, clientCommand, cut, durationMs, iso, out, positiveInt, table, tsOf, withClient } from './common.js';

/** Pages a ListLogs or SearchTraces may hold (the server's bounds). */
const MAX_LOG_PAGE = 1000;
const MAX_TRACE_PAGE = 200;

/** OTLP severity names (the first number of each range) for `logs --severity`. */
const LOG_SEVERITIES: Record<string, number> = { trace: 1, debug: 5, info: 9, warn: 13, error: 17, fatal: 21 };

/** A `logs --severity` as its OTLP severity number: a name or a number from 1 to 24. */
function logSeverity(text: string): number {
  const n = LOG_SEVERITIES[text.toLowerCase()] ?? Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 24) throw new Error(`--severity: expected one of ${Object.keys(LOG_SEVERITIES).join(', ')} or a number from 1 to 24, got ${JSON.stringify(text)}`);
  return n;
}

/** `heimdall services`: services and their operations in a window, as a table or one JSON object per service. */
function addServicesCommand(program: Command): void {
  clientCommand(program, 'services', 'list the services and operations (span names) seen, with span and error counts')
    .option('--since <duration>', 'how far back', '1h')
    .option('--limit <n>', 'at most this many services (those with the most spans)', '100')
    .option('--operations <n>', 'at most this many operations per service', '100')
    .action((o: Record<string, string>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const res = await c.unary(QueryService.method.listServices, {
          startTime: tsOf(ago(o.since ?? '1h', '--since')),
          maxServices: positiveInt(o.limit ?? '100', '--limit', 1000),
          maxOperations: positiveInt(o.operations ?? '100', '--operations', 1000),
        });
        if (g.json) {
          for (const s of res.services) out(JSON.stringify(toJson(ServiceOperationsSchema, s)));
          return;
        }
        const rows = res.services.flatMap((s) => [
          [s.serviceName, '(all)', String(s.spanCount), String(s.errorCount)],
          ...s.operations.map((op) => ['', op.spanName, String(op.spanCount), String(op.errorCount)]),
          ...(s.operationsTruncated ? [['', '… more operations (--operations)', '', '']] : []),
        ]);
        table(['SERVICE', 'OPERATION', 'SPANS', 'ERRORS'], rows);
        if (res.truncated) out('… more services (--limit)');
      }),
    );
}

/** A search result's root: service and span name, marked when the root span is not stored. */
const rootOf = (t: TraceSummary): string => `${t.rootMissing ? '(no root) ' : ''}${t.rootServiceName} ${t.rootSpanName}`;

/** A `traces --attr key=value` as an attribute filter. */
function attributeOf(text: string): { key: string; value: string } {
  const i = text.indexOf('=');
  if (i <= 0) throw new Error(`--attr: expected key=value, got ${JSON.stringify(text)}`);
  return { key: text.slice(0, i), value: text.slice(i + 1) };
}

/** `heimdall traces`: SearchTraces page by page up to --limit, one line per trace, or one JSON object per line. */
function addTracesCommand(program: Command): void {
  clientCommand(program, 'traces', 'search traces, newest first: those with a span matching every filter given')
    .option('--since <duration>', 'how far back', '1h')
    .option('--service <name>', 'a span of this service')
    .option('--operation <name>', 'a span of this name')
    .option('--attr <key=value>', 'a span attribute equal to a value (repeatable, at most 16)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--min-duration <duration>', 'a span at least this long (250ms, 2s)')
    .option('--max-duration <duration>', 'a span at most this long')
    .option('--status <status>', 'a span with this status: ok, error or unset')
    .option('--limit <n>', 'at most this many traces', '20')
    .action((o: Record<string, string | undefined> & { attr: string[] }, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const limit = positiveInt(o.limit ?? '20', '--limit');
        const status = o.status === undefined ? SpanStatus.UNSPECIFIED : ({ ok: SpanStatus.OK, error: SpanStatus.ERROR, unset: SpanStatus.UNSET } as Record<string, SpanStatus>)[o.status.toLowerCase()];
        if (status === undefined) throw new Error(`--status: expected ok, error or unset, got ${JSON.stringify(o.status)}`);
        const request = {
          startTime: tsOf(ago(o.since ?? '1h', '--since')),
          serviceName: o.service ?? '',
          spanName: o.operation ?? '',
          attributes: o.attr.map(attributeOf),
          minDurationMs: o.minDuration === undefined ? 0 : durationMs(o.minDuration, '--min-duration'),
          maxDurationMs: o.maxDuration === undefined ? 0 : durationMs(o.maxDuration, '--max-duration'),
          status,
        };
        const rows: string[][] = [];
        let pageToken = '';
        let n = 0;
        do {
          const res = await c.unary(QueryService.method.searchTraces, { ...request, pageSize: Math.min(MAX_TRACE_PAGE, limit - n), pageToken });
          for (const t of res.traces) {
            if (g.json) out(JSON.stringify(toJson(TraceSummarySchema, t)));
            else rows.push([t.traceId, cut(rootOf(t), 60), `${t.durationMs.toFixed(1)} ms`, String(t.spanCount), String(t.errorCount), iso(t.startTime)]);
          }
          n += res.traces.length;
          pageToken = res.nextPageToken;
        } while (pageToken && n < limit);
        if (!g.json) table(['TRACE ID', 'ROOT', 'DURATION', 'SPANS', 'ERRORS', 'START'], rows);
      }),
    );
}

/** `heimdall logs`: ListLogs page by page up to --limit, one line per record, or one JSON object per line. */
function addLogsCommand(program: Command): void {
  clientCommand(program, 'logs', 'list OTLP log records, newest first')
    .option('--since <duration>', 'how far back', '1h')
    .option('--service <name>', 'only of this service')
    .option('--severity <level>', `at least this severe: ${Object.keys(LOG_SEVERITIES).join(', ')} or an OTLP severity number (1-24)`)
    .option('--trace <id>', 'only of this trace id')
    .option('--contains <text>', 'body contains this text (case-insensitive)')
    .option('--limit <n>', 'at most this many records', '100')
    .action((o: Record<string, string | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const limit = positiveInt(o.limit ?? '100', '--limit');
        const request = {
          startTime: tsOf(ago(o.since ?? '1h', '--since')),
          services: o.service ? [o.service] : [],
          minSeverityNumber: o.severity === undefined ? 0 : logSeverity(o.severity),
          traceId: o.trace ?? '',
          bodyContains: o.contains ?? '',
        };
        const rows: string[][] = [];
        let pageToken = '';
        let n = 0;
        do {
          const res = await c.unary(QueryService.method.listLogs, { ...request, pageSize: Math.min(MAX_LOG_PAGE, limit - n), pageToken });
          for (const r of res.records) {
            if (g.json) out(JSON.stringify(toJson(LogRecordSchema, r)));
            else rows.push([iso(r.timestamp), r.severityText || String(r.severityNumber), r.serviceName, r.traceId, cut(JSON.stringify(r.body).slice(1, -1), 100)]);
          }
          n += res.records.length;
          pageToken = res.nextPageToken;
        } while (pageToken && n < limit);
        if (!g.json) table(['TIME', 'SEVERITY', 'SERVICE', 'TRACE ID', 'BODY'], rows);
      }),
    );
}

/** Adds the commands over the OpenTelemetry data: services, traces, logs. */
export function addQueryCommands(program: Command): void {
  addServicesCommand(program);
  addTracesCommand(program);
  addLogsCommand(program);
}
