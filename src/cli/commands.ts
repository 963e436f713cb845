import { toJson } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import { SEVERITY_NAMES } from '../events/events.js';
import { EventSchema, EventService } from '../gen/heimdall/v1/events_pb.js';
import { GetSummaryResponseSchema, QueryService, TimelineItemSchema, type GetSummaryResponse } from '../gen/heimdall/v1/query_pb.js';
import { ago, clientCommand, cut, EXIT_NOT_FOUND, iso, jsonObject, out, table, tsOf, withClient } from './common.js';
import { addJobCommands } from './jobs.js';
import { addQueryCommands } from './queries.js';
import { addSecurityCommands } from './security.js';
import { ATTRIBUTE_VALUE_CHARS, formatTimeline, SPAN_ATTRIBUTES_SHOWN } from './timeline.js';

/** A `--severity` name as its number; throws naming the option and the accepted names. */
function severityOf(name: string): number {
  const i = SEVERITY_NAMES.indexOf(name.toLowerCase() as (typeof SEVERITY_NAMES)[number]);
  if (i <= 0) throw new Error(`--severity: expected one of ${SEVERITY_NAMES.slice(1).join(', ')}, got ${JSON.stringify(name)}`);
  return i;
}

/** `heimdall events`: pages through ListEvents up to `--limit`, as a table or one JSON object per line. */
function addEventsCommand(program: Command): void {
  clientCommand(program, 'events', 'list events, newest first')
    .option('--since <duration>', 'how far back', '1h')
    .option('--severity <level>', 'at least this severe (debug, info, notice, warning, error, critical)')
    .option('--source <source>', 'only from this source')
    .option('--type <type>', 'only of this event type')
    .option('--category <category>', 'only in this category')
    .option('--correlation-id <id>', 'only with this correlation id')
    .option('--contains <text>', 'message contains this text')
    .option('--limit <n>', 'at most this many events', '100')
    .action((o: Record<string, string | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new Error('--limit: expected a positive integer');
        const rows: string[][] = [];
        let pageToken = '';
        let n = 0;
        do {
          const res = await c.unary(QueryService.method.listEvents, {
            startTime: tsOf(ago(o.since ?? '1h', '--since')),
            ...(o.severity ? { minSeverity: severityOf(o.severity) } : {}),
            sources: o.source ? [o.source] : [],
            eventTypes: o.type ? [o.type] : [],
            categories: o.category ? [o.category] : [],
            correlationId: o.correlationId ?? '',
            messageContains: o.contains ?? '',
            pageSize: Math.min(1000, limit - n),
            pageToken,
          });
          for (const e of res.events) {
            if (g.json) out(JSON.stringify(toJson(EventSchema, e)));
            else rows.push([iso(e.timestamp), SEVERITY_NAMES[e.severity] ?? String(e.severity), e.source, e.eventType, e.correlationId, cut(e.message, 80)]);
          }
          n += res.events.length;
          pageToken = res.nextPageToken;
        } while (pageToken && n < limit);
        if (!g.json) table(['TIME', 'SEVERITY', 'SOURCE', 'TYPE', 'CORRELATION ID', 'MESSAGE'], rows);
      }),
    );
}

/** `heimdall trace <id>`: a trace's (or a correlation id's) timeline, as a tree or one JSON item per line; exit status 3 when nothing is stored for the id. */
function addTraceCommand(program: Command): void {
  clientCommand(program, 'trace', `show the spans, logs and events of a trace id or a correlation id (exit status ${EXIT_NOT_FOUND} when nothing is stored for it)`)
    .argument('<id>', 'a trace id (32 hex digits) or a correlation id')
    .addHelpText('after', `\nThe tree shows each span's kind, duration and status (with its message), and its first ${SPAN_ATTRIBUTES_SHOWN} attributes\nby key (values cut at ${ATTRIBUTE_VALUE_CHARS} characters); --json prints every item whole.\n\nExit status: 0 found, 1 the call failed or the input is bad, ${EXIT_NOT_FOUND} nothing stored for the id.`)
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const res = await c.unary(QueryService.method.getTrace, { id: /^[0-9a-fA-F]{32}$/.test(id) ? { case: 'traceId', value: id } : { case: 'correlationId', value: id } });
        if (res.items.length === 0) {
          process.stderr.write(`heimdall: nothing stored for ${id}\n`);
          process.exitCode = EXIT_NOT_FOUND;
          return;
        }
        if (g.json) {
          for (const it of res.items) out(JSON.stringify(toJson(TimelineItemSchema, it)));
          return;
        }
        out(`trace ${res.traceIds.join(', ') || '(none)'}: ${res.spanCount} spans, ${res.logCount} logs, ${res.eventCount} events`);
        for (const line of formatTimeline(res.items)) out(line);
      }),
    );
}

/** A summary as text: the window's totals, then a table per grouping that has rows. */
function printSummary(res: GetSummaryResponse): void {
  out(`${iso(res.startTime)} .. ${iso(res.endTime)}: ${res.events} events, error rate ${(res.errorRate * 100).toFixed(2)}%`);
  const section = (title: string, counts: Array<{ key: string; count: bigint }>) => {
    if (counts.length === 0) return;
    out('');
    table([title, 'COUNT'], counts.map((x) => [x.key || '(none)', String(x.count)]));
  };
  section('SEVERITY', res.bySeverity);
  section('SOURCE', res.bySource);
  section('EVENT TYPE', res.byEventType);
  section('CATEGORY', res.byCategory);
  section('TOP ERROR SOURCES', res.topErrorSources);
  if (res.services.length > 0) {
    out('');
    table(['SERVICE', 'SPANS', 'ERROR SPANS', 'LOGS'], res.services.map((s) => [s.serviceName, String(s.spans), String(s.errorSpans), String(s.logs)]));
  }
}

/** `heimdall summary`: counts over a window, as text or one JSON object. */
function addSummaryCommand(program: Command): void {
  clientCommand(program, 'summary', 'counts of events, errors, spans and logs over a time window')
    .option('--since <duration>', 'how far back', '24h')
    .option('--top <n>', 'rows each grouping lists (the rest summed as __other__)', '10')
    .action((o: Record<string, string | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const res = await c.unary(QueryService.method.getSummary, { startTime: tsOf(ago(o.since ?? '24h', '--since')), top: Number(o.top ?? 10) });
        if (g.json) out(JSON.stringify(toJson(GetSummaryResponseSchema, res)));
        else printSummary(res);
      }),
    );
}

/** `heimdall emit`: writes one event and prints its id. */
function addEmitCommand(program: Command): void {
  clientCommand(program, 'emit', 'write one event')
    .requiredOption('--type <type>', 'event type')
    .requiredOption('--severity <level>', 'debug, info, notice, warning, error or critical')
    .requiredOption('--message <text>', 'message')
    .option('--source <source>', 'source', 'heimdall-cli')
    .option('--category <category>', 'category')
    .option('--correlation-id <id>', 'correlation id')
    .option('--payload <json>', 'payload: a JSON object')
    .action((o: Record<string, string | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const payload = o.payload === undefined ? undefined : jsonObject(o.payload, '--payload');
        const res = await c.unary(EventService.method.writeEvents, {
          events: [
            {
              eventType: o.type ?? '',
              severity: severityOf(o.severity ?? ''),
              message: o.message ?? '',
              source: o.source ?? '',
              category: o.category ?? '',
              correlationId: o.correlationId ?? '',
              ...(payload ? { payload } : {}),
            },
          ],
        });
        if (g.json) out(JSON.stringify({ id: res.ids[0] ?? '' }));
        else out(res.ids[0] ?? '');
      }),
    );
}

/** Adds the commands that talk to a running agent over gRPC: events, trace, summary, emit, services, traces, logs, jobs, job, security. */
export function addClientCommands(program: Command): void {
  addEventsCommand(program);
  addTraceCommand(program);
  addSummaryCommand(program);
  addEmitCommand(program);
  addQueryCommands(program);
  addJobCommands(program);
  addSecurityCommands(program);
}
