import type { JSX } from 'preact';
import type { Event as HeimdallEvent, ListEventsResponse } from '../api/types.js';
import { Pager } from '../components/pager.js';
import { SeverityBadge } from '../components/severity.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { TimeRange } from '../components/time-range.js';
import { useConsole } from '../context.js';
import { href, Link, navigate } from '../router.js';
import { formatTime, isWindow, type Window } from '../time.js';
import { useCall } from '../use-call.js';
import { useUrlSearch } from '../use-search.js';

/** Event severities as the API names them, for the filter. */
const SEVERITIES = ['debug', 'info', 'notice', 'warning', 'error', 'critical'];

/** The filters an events URL holds: `/ui/events?type=...&source=...&severity=warning&correlation=...&q=...&window=24h`. */
const FIELDS = ['type', 'source', 'severity', 'category', 'correlation', 'q'] as const;
type Filters = Record<(typeof FIELDS)[number], string> & { window: Window };

function readFilters(query: URLSearchParams): Filters {
  const w = query.get('window');
  const f = Object.fromEntries(FIELDS.map((k) => [k, query.get(k) ?? ''])) as Record<(typeof FIELDS)[number], string>;
  // A correlation id shows every event of that operation: a wide window unless one is given.
  return { ...f, window: isWindow(w) ? w : f.correlation ? '7d' : '1h' };
}

const PAGE_SIZE = 100;

const columns: Array<Column<HeimdallEvent>> = [
  { title: 'Time', class: 'nowrap', cell: (e) => formatTime(e.timestamp) },
  { title: 'Severity', cell: (e) => <SeverityBadge severity={e.severity ?? 'SEVERITY_UNSPECIFIED'} /> },
  { title: 'Type', class: 'nowrap', cell: (e) => <Link href={href('/events', { type: e.eventType })}>{e.eventType}</Link> },
  { title: 'Source', class: 'nowrap', cell: (e) => <Link href={href('/events', { source: e.source })}>{e.source}</Link> },
  { title: 'Message', class: 'wide', cell: (e) => e.message },
  {
    title: 'Correlation',
    class: 'nowrap mono',
    cell: (e) =>
      e.correlationId ? (
        <Link href={href('/events', { correlation: e.correlationId })} class="correlation-link" title="Every event of this correlation id">
          {e.correlationId.length > 14 ? `${e.correlationId.slice(0, 14)}…` : e.correlationId}
        </Link>
      ) : (
        ''
      ),
  },
  { title: 'Trace', class: 'nowrap mono', cell: (e) => (e.traceId ? <Link href={href(`/traces/${e.traceId}`)}>{e.traceId.slice(0, 12)}…</Link> : '') },
];

function requestOf(f: Filters, pageToken: string) {
  return {
    since: f.window,
    eventTypes: f.type ? [f.type] : [],
    sources: f.source ? [f.source] : [],
    categories: f.category ? [f.category] : [],
    minSeverity: f.severity ? `SEVERITY_${f.severity.toUpperCase()}` : 'SEVERITY_UNSPECIFIED',
    correlationId: f.correlation,
    messageContains: f.q,
    pageSize: PAGE_SIZE,
    pageToken,
  };
}

/** Event search with filters in the URL; a correlation id links to every event that shares it. */
export function EventsPage(): JSX.Element {
  const { api } = useConsole();
  const { search: filters, form, setForm, pages, setPages, key } = useUrlSearch(readFilters);
  const result = useCall((signal) => api.call<ListEventsResponse>('QueryService', 'ListEvents', requestOf(filters, pages[pages.length - 1] ?? ''), signal), [key, pages.length]);
  const submit = (e: Event) => {
    e.preventDefault();
    navigate(href('/events', { ...form, window: form.window }));
  };
  const text = (k: (typeof FIELDS)[number], label: string, placeholder = 'any') => (
    <label class="field">
      <span>{label}</span>
      <input name={k} value={form[k]} placeholder={placeholder} onInput={(e) => setForm({ ...form, [k]: (e.currentTarget).value })} />
    </label>
  );
  const events = result.data?.events ?? [];
  const next = result.data?.nextPageToken;
  return (
    <section>
      <PageHeader title={filters.correlation ? `Events of ${filters.correlation}` : 'Events'} />
      <form class="filters" onSubmit={submit} data-testid="event-search">
        {text('type', 'Type')}
        {text('source', 'Source')}
        <label class="field">
          <span>Severity at least</span>
          <select name="severity" value={form.severity} onChange={(e) => setForm({ ...form, severity: (e.currentTarget).value })}>
            <option value="">any</option>
            {SEVERITIES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        {text('category', 'Category')}
        {text('correlation', 'Correlation id')}
        {text('q', 'Message contains', 'text')}
        <TimeRange value={form.window} onChange={(w) => setForm({ ...form, window: w })} />
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      {result.error !== undefined && <ErrorBox error={result.error} />}
      <Table testId="events" columns={columns} rows={events} rowKey={(e) => e.id ?? `${e.timestamp}`} empty={result.loading ? 'Searching…' : 'No events match.'} />
      <Pager pages={pages} setPages={setPages} next={next} />
    </section>
  );
}
