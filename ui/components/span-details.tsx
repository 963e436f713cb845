import type { JSX } from 'preact';
import type { Span } from '../api/trace-types.js';
import { formatTime } from '../time.js';
import { formatMs, type WaterfallRow } from '../trace-layout.js';
import { Attributes } from './attributes.js';
import { SeverityBadge } from './severity.js';

/** A span's status as a badge (error in red, ok in green), with its message. */
function StatusText(props: { span: Span }): JSX.Element {
  const code = props.span.statusCode ?? 'Unset';
  return (
    <span>
      <span class={`badge ${code === 'Error' ? 'sev-error' : code === 'Ok' ? 'state-ok' : ''}`}>{code.toLowerCase()}</span> {props.span.statusMessage}
    </span>
  );
}

/** Where a span sits in its trace: its parent's id, or why it has none. */
function parentText(s: Span): string {
  if (!s.parentSpanId) return 'none (a root)';
  return s.orphan ? `${s.parentSpanId} (not stored: an orphan)` : s.parentSpanId;
}

/** The log records and events of a span (those the waterfall shows under it, its children's apart). */
function SpanNotes(props: { notes: WaterfallRow[] }): JSX.Element | null {
  if (props.notes.length === 0) return null;
  return (
    <>
      <h3>Logs and events</h3>
      <ul class="span-notes" data-testid="span-notes">
        {props.notes.map((r) =>
          r.kind === 'log' ? (
            <li>
              <SeverityBadge severity={r.log.severityNumber} text={r.log.severityText} /> <span class="muted small">+{formatMs(r.offsetUs / 1000)}</span> {r.log.body}
            </li>
          ) : r.kind === 'event' ? (
            <li>
              <SeverityBadge severity={r.event.severity ?? 'SEVERITY_UNSPECIFIED'} /> <span class="muted small">+{formatMs(r.offsetUs / 1000)}</span> {r.event.eventType}: {r.event.message}
            </li>
          ) : null,
        )}
      </ul>
    </>
  );
}

/** The details of a selected span: service, name, kind, status, timing, ids, attributes, and its logs and events. */
export function SpanDetails(props: { span: Span; notes: WaterfallRow[]; offsetUs: number; onClose: () => void }): JSX.Element {
  const s = props.span;
  const fields: Array<[string, JSX.Element | string]> = [
    ['Service', s.serviceName ?? ''],
    ['Kind', s.kind ?? ''],
    ['Status', <StatusText span={s} />],
    ['Duration', formatMs(s.durationMs ?? 0)],
    ['Start', `${formatTime(s.startTime)} (+${formatMs(props.offsetUs / 1000)})`],
    ['Span id', s.spanId ?? ''],
    ['Parent id', parentText(s)],
  ];
  return (
    <aside class="card span-details" data-testid="span-details" data-span-id={s.spanId}>
      <div class="details-head">
        <h2>{s.name}</h2>
        <button onClick={props.onClose} title="Close the details" aria-label="Close">
          ×
        </button>
      </div>
      <dl class="fields">
        {fields.map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd class={k.endsWith('id') ? 'mono' : ''}>{v}</dd>
          </>
        ))}
      </dl>
      <h3>Attributes</h3>
      <Attributes attrs={s.attributes} testId="span-attributes" />
      <SpanNotes notes={props.notes} />
    </aside>
  );
}
