import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { formatMs, serviceColor, type TraceLayout, type WaterfallRow } from '../trace-layout.js';
import { Attributes } from './attributes.js';
import { SeverityBadge, severityLevel } from './severity.js';

/** Pixels of indentation per level of the trace tree. */
const INDENT = 16;

/** The time axis: ticks at quarters of the trace, and a marker per log record and event. */
function Axis(props: { layout: TraceLayout }): JSX.Element {
  const { layout } = props;
  const notes = layout.rows.filter((r) => r.kind !== 'span');
  return (
    <div class="wf-row wf-head">
      <div class="wf-label muted">Service · span</div>
      <div class="wf-track wf-axis" data-testid="trace-axis">
        {[0, 25, 50, 75, 100].map((p) => (
          <span class={`wf-tick${p === 100 ? ' last' : ''}`} style={{ left: `${p}%` }}>
            {formatMs((layout.durationUs * p) / 100 / 1000)}
          </span>
        ))}
        {notes.map((r) => (
          <span class={`wf-axis-mark ${noteClass(r)}`} style={{ left: `${r.left}%` }} title={noteText(r)} />
        ))}
      </div>
    </div>
  );
}

function noteClass(r: WaterfallRow): string {
  if (r.kind === 'log') return `sev-bg-${severityLevel(r.log.severityNumber)}`;
  if (r.kind === 'event') return `sev-bg-${severityLevel(r.event.severity)}`;
  return '';
}

function noteText(r: WaterfallRow): string {
  if (r.kind === 'log') return `+${formatMs(r.offsetUs / 1000)} ${r.log.body ?? ''}`;
  if (r.kind === 'event') return `+${formatMs(r.offsetUs / 1000)} ${r.event.eventType ?? ''}: ${r.event.message ?? ''}`;
  return '';
}

/** A key handler running `fn` on Enter or Space (rows act as buttons). */
function onEnter(fn: () => void): (e: KeyboardEvent) => void {
  return (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      fn();
    }
  };
}

/** One span: indented name with its service colour, and its bar on the trace's time axis. */
function SpanRow(props: { row: Extract<WaterfallRow, { kind: 'span' }>; color: string; selected: boolean; onSelect: () => void }): JSX.Element {
  const { row } = props;
  const s = row.span;
  const error = s.statusCode === 'Error';
  const labelAfter = row.left + row.width < 82;
  return (
    <div class={`wf-row wf-span${props.selected ? ' selected' : ''}${error ? ' wf-error' : ''}`} data-span-id={s.spanId} data-depth={row.depth} role="button" tabIndex={0} onClick={props.onSelect} onKeyDown={onEnter(props.onSelect)}>
      <div class="wf-label" style={{ paddingLeft: `${8 + row.depth * INDENT}px` }} title={`${s.serviceName ?? ''} · ${s.name ?? ''}`}>
        <span class="svc-chip" style={{ background: props.color }} />
        <span class="wf-service">{s.serviceName}</span>
        <span class="span-name">{s.name}</span>
        {error && <span class="badge sev-error">error</span>}
        {s.orphan && <span class="badge orphan" title={`Its parent ${s.parentSpanId ?? ''} is not stored`}>orphan</span>}
      </div>
      <div class="wf-track">
        <div class="wf-bar" style={{ left: `${row.left}%`, width: `${row.width}%`, background: props.color }} />
        <span class="wf-dur" style={labelAfter ? { left: `${row.left + row.width}%` } : { right: `${100 - row.left}%` }}>
          {formatMs(s.durationMs ?? 0)}
        </span>
      </div>
    </div>
  );
}

/** One log record or event under its span: severity and text, a marker on the time axis; a click shows its attributes. */
function NoteRow(props: { row: Exclude<WaterfallRow, { kind: 'span' }>; open: boolean; onToggle: () => void }): JSX.Element {
  const { row } = props;
  const isLog = row.kind === 'log';
  const severity = isLog ? row.log.severityNumber : row.event.severity;
  const text = isLog ? row.log.body : `${row.event.eventType ?? ''}: ${row.event.message ?? ''}`;
  const attrs = isLog ? row.log.attributes : undefined;
  return (
    <>
      <div class={`wf-row wf-note wf-${row.kind}`} data-depth={row.depth} role="button" tabIndex={0} onClick={props.onToggle} onKeyDown={onEnter(props.onToggle)}>
        <div class="wf-label" style={{ paddingLeft: `${8 + row.depth * INDENT}px` }} title={text}>
          <SeverityBadge severity={severity ?? (isLog ? 0 : 'SEVERITY_UNSPECIFIED')} text={isLog ? row.log.severityText : undefined} />
          <span class="muted small">{isLog ? 'log' : 'event'}</span>
          <span class="note-text">{text}</span>
        </div>
        <div class="wf-track">
          <span class={`wf-mark ${noteClass(row)}`} style={{ left: `${row.left}%` }} />
          <span class="wf-dur muted" style={row.left < 82 ? { left: `${row.left}%` } : { right: `${100 - row.left}%` }}>
            +{formatMs(row.offsetUs / 1000)}
          </span>
        </div>
      </div>
      {props.open && (
        <div class="wf-note-detail" data-testid="note-detail">
          {isLog ? <Attributes attrs={attrs} /> : <p class="small">{row.event.source} · {row.event.category} · correlation {row.event.correlationId || '—'}</p>}
        </div>
      )}
    </>
  );
}

/**
 * The waterfall of a trace: one row per span in tree order, indented by depth, its bar placed by its
 * start and sized by its duration; log records and events under their span. Clicking a span selects it.
 */
export function Waterfall(props: { layout: TraceLayout; selected: string; onSelect: (spanId: string) => void }): JSX.Element {
  const { layout } = props;
  const [open, setOpen] = useState<ReadonlySet<number>>(new Set());
  const toggle = (i: number) => {
    const next = new Set(open);
    if (!next.delete(i)) next.add(i);
    setOpen(next);
  };
  const color = (service: string | undefined) => serviceColor(layout.services.indexOf(service ?? ''));
  return (
    <div class="waterfall" data-testid="waterfall">
      <Axis layout={layout} />
      {layout.rows.map((r, i) =>
        r.kind === 'span' ? (
          <SpanRow key={r.span.spanId} row={r} color={color(r.span.serviceName)} selected={r.span.spanId === props.selected} onSelect={() => props.onSelect(r.span.spanId ?? '')} />
        ) : (
          <NoteRow key={`n${i}`} row={r} open={open.has(i)} onToggle={() => toggle(i)} />
        ),
      )}
    </div>
  );
}
