import type { JSX } from 'preact';
import type { ListLogsResponse, LogRecord } from '../api/types.js';
import { Pager } from '../components/pager.js';
import { LOG_SEVERITIES, SeverityBadge } from '../components/severity.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { TimeRange } from '../components/time-range.js';
import { useConsole } from '../context.js';
import { href, Link, navigate } from '../router.js';
import { formatTime, isWindow, type Window } from '../time.js';
import { useCall } from '../use-call.js';
import { useUrlSearch } from '../use-search.js';

/** The search a logs URL holds: `/ui/logs?service=checkout&severity=error&q=timeout&window=1h`. */
interface LogSearch {
  service: string;
  severity: string;
  q: string;
  window: Window;
}

function readSearch(query: URLSearchParams): LogSearch {
  const w = query.get('window');
  return { service: query.get('service') ?? '', severity: query.get('severity') ?? '', q: query.get('q') ?? '', window: isWindow(w) ? w : '1h' };
}

const PAGE_SIZE = 100;

const columns: Array<Column<LogRecord>> = [
  { title: 'Time', class: 'nowrap', cell: (r) => formatTime(r.timestamp) },
  { title: 'Service', class: 'nowrap', cell: (r) => <Link href={href('/logs', { service: r.serviceName })}>{r.serviceName}</Link> },
  { title: 'Severity', cell: (r) => <SeverityBadge severity={r.severityNumber} text={r.severityText} /> },
  { title: 'Body', class: 'wide mono', cell: (r) => r.body },
  {
    title: 'Trace',
    class: 'nowrap mono',
    cell: (r) =>
      r.traceId ? (
        <Link href={href(`/traces/${r.traceId}`)} class="trace-link" title="Open the trace">
          {r.traceId.slice(0, 12)}…
        </Link>
      ) : (
        ''
      ),
  },
];

/** Log search: service, minimum severity, body text and window; each record links to its trace. The search lives in the URL. */
export function LogsPage(): JSX.Element {
  const { api } = useConsole();
  const { search, form, setForm, pages, setPages, key } = useUrlSearch(readSearch);
  const result = useCall(async (signal) => {
    const min = LOG_SEVERITIES.find(([name]) => name === search.severity)?.[1] ?? 0;
    const body = { since: search.window, services: search.service ? [search.service] : [], minSeverityNumber: min, bodyContains: search.q, pageSize: PAGE_SIZE, pageToken: pages[pages.length - 1] };
    return api.call<ListLogsResponse>('QueryService', 'ListLogs', body, signal);
  }, [key, pages.length]);
  const submit = (e: Event) => {
    e.preventDefault();
    navigate(href('/logs', { service: form.service, severity: form.severity, q: form.q, window: form.window }));
  };
  const set = (k: keyof LogSearch) => (e: Event) => setForm({ ...form, [k]: (e.currentTarget as HTMLInputElement).value });
  const records = result.data?.records ?? [];
  const next = result.data?.nextPageToken;
  return (
    <section>
      <PageHeader title="Logs" />
      <form class="filters" onSubmit={submit} data-testid="log-search">
        <label class="field">
          <span>Service</span>
          <input name="service" value={form.service} onInput={set('service')} placeholder="any" />
        </label>
        <label class="field">
          <span>Severity at least</span>
          <select name="severity" value={form.severity} onChange={set('severity')}>
            <option value="">any</option>
            {LOG_SEVERITIES.map(([name]) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        </label>
        <label class="field grow">
          <span>Body contains</span>
          <input name="q" value={form.q} onInput={set('q')} placeholder="text (case-insensitive)" />
        </label>
        <TimeRange value={form.window} onChange={(w) => setForm({ ...form, window: w })} />
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      {result.error !== undefined && <ErrorBox error={result.error} />}
      <Table testId="logs" columns={columns} rows={records} rowKey={(r) => r.id ?? `${r.timestamp}${r.spanId}`} empty={result.loading ? 'Searching…' : 'No log records match.'} />
      <Pager pages={pages} setPages={setPages} next={next} />
    </section>
  );
}
