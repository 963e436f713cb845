import type { JSX } from 'preact';
import { useMemo } from 'preact/hooks';
import type { GetTraceResponse } from '../api/trace-types.js';
import { SpanDetails } from '../components/span-details.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Waterfall } from '../components/waterfall.js';
import { useConsole } from '../context.js';
import { href, Link, navigate, useLocation } from '../router.js';
import { formatTime } from '../time.js';
import { formatMs, layoutTrace, serviceColor, type TraceLayout, type WaterfallRow } from '../trace-layout.js';
import { useCall } from '../use-call.js';

/** `1 span`, `3 spans`. */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The trace at a glance: root, start, duration, counts, and the services with their colours. */
function TraceSummaryBar(props: { layout: TraceLayout; data: GetTraceResponse }): JSX.Element {
  const { layout, data } = props;
  const root = layout.rows.find((r) => r.kind === 'span' && !r.span.parentSpanId);
  const errors = layout.rows.filter((r) => r.kind === 'span' && r.span.statusCode === 'Error').length;
  return (
    <div class="trace-summary card" data-testid="trace-summary">
      <span>
        <strong>{root?.kind === 'span' ? `${root.span.serviceName ?? ''} · ${root.span.name ?? ''}` : '(no root)'}</strong>
      </span>
      <span>{formatTime(new Date(layout.startUs / 1000).toISOString())}</span>
      <span>{formatMs(layout.durationUs / 1000)}</span>
      <span>{count(data.spanCount ?? 0, 'span')}</span>
      {errors > 0 && <span class="badge sev-error">{count(errors, 'error')}</span>}
      <span>{count(data.logCount ?? 0, 'log')}</span>
      <span>{count(data.eventCount ?? 0, 'event')}</span>
      <span class="legend">
        {layout.services.map((s, i) => (
          <span class="legend-item">
            <span class="svc-chip" style={{ background: serviceColor(i) }} />
            {s}
          </span>
        ))}
      </span>
    </div>
  );
}

/** The log records and events the waterfall shows directly under the span `spanId` (before its first child). */
function notesOf(rows: WaterfallRow[], spanId: string): WaterfallRow[] {
  const at = rows.findIndex((r) => r.kind === 'span' && r.span.spanId === spanId);
  if (at < 0) return [];
  const out: WaterfallRow[] = [];
  for (const r of rows.slice(at + 1)) {
    if (r.kind === 'span') {
      if (r.depth <= (rows[at]?.depth ?? 0)) break;
      continue;
    }
    if ((r.kind === 'log' ? r.log.spanId : r.event.spanId) === spanId) out.push(r);
  }
  return out;
}

/**
 * One trace (`/ui/traces/<id>?span=<span id>`): its waterfall in tree order with its logs and events on
 * the same timeline; the selected span's details beside it (the selection lives in the URL).
 */
export function TraceView(props: { traceId: string }): JSX.Element {
  const { api } = useConsole();
  const { query } = useLocation();
  const selected = query.get('span') ?? '';
  const trace = useCall((signal) => api.call<GetTraceResponse>('QueryService', 'GetTrace', { traceId: props.traceId }, signal), [props.traceId]);
  const layout = useMemo(() => layoutTrace(trace.data?.items ?? []), [trace.data]);
  const select = (spanId: string) => navigate(href(`/traces/${props.traceId}`, { span: spanId === selected ? undefined : spanId }), true);
  const row = layout.rows.find((r) => r.kind === 'span' && r.span.spanId === selected);
  return (
    <section>
      <PageHeader title={`Trace ${props.traceId}`}>
        <Link href={href('/traces')}>Search traces</Link>
      </PageHeader>
      {trace.error !== undefined && <ErrorBox error={trace.error} />}
      {trace.loading && !trace.data && <div class="card muted">Loading…</div>}
      {trace.data && layout.rows.length === 0 && (
        <div class="card muted" data-testid="no-trace">
          No span, log record or event with this trace id is stored (it may be past retention, or of another tenant).
        </div>
      )}
      {trace.data && layout.rows.length > 0 && (
        <>
          <TraceSummaryBar layout={layout} data={trace.data} />
          <div class={`trace-body${row ? ' with-details' : ''}`}>
            <div class="card waterfall-card">
              <Waterfall layout={layout} selected={selected} onSelect={select} />
            </div>
            {row?.kind === 'span' && <SpanDetails span={row.span} notes={notesOf(layout.rows, selected)} offsetUs={row.offsetUs} onClose={() => select(selected)} />}
          </div>
        </>
      )}
    </section>
  );
}
