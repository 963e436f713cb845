import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Api } from '../api/client.js';
import type { ListServicesResponse, SearchTracesResponse, TraceSummary } from '../api/trace-types.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { TimeRange } from '../components/time-range.js';
import { TraceScatter } from '../components/trace-scatter.js';
import { useConsole } from '../context.js';
import { BASE, href, Link, navigate, useLocation } from '../router.js';
import { formatTime, windowRange } from '../time.js';
import { formatMs } from '../trace-layout.js';
import { LIMITS, MAX_ATTRIBUTES, readTraceSearch, SPAN_STATUSES, traceSearchQuery, traceSearchRequest, type TraceSearch } from '../trace-search.js';
import { useCall } from '../use-call.js';

const columns: Array<Column<TraceSummary>> = [
  {
    title: 'Trace',
    class: 'nowrap mono',
    cell: (t) => (
      <Link href={href(`/traces/${t.traceId}`)} class="trace-link" title={t.traceId}>
        {t.traceId.slice(0, 16)}…
      </Link>
    ),
  },
  {
    title: 'Root',
    class: 'wide',
    cell: (t) =>
      t.rootMissing ? (
        <span class="muted" title={`Earliest span: ${t.rootServiceName ?? ''} · ${t.rootSpanName ?? ''}`}>
          (no root)
        </span>
      ) : (
        <span>
          <strong>{t.rootServiceName}</strong> · {t.rootSpanName}
        </span>
      ),
  },
  { title: 'Start', class: 'nowrap', cell: (t) => formatTime(t.startTime) },
  { title: 'Duration', class: 'num nowrap', cell: (t) => formatMs(t.durationMs ?? 0) },
  { title: 'Spans', class: 'num', cell: (t) => t.spanCount ?? 0 },
  { title: 'Errors', class: 'num', cell: (t) => ((t.errorCount ?? 0) > 0 ? <span class="badge sev-error">{t.errorCount}</span> : <span class="muted">0</span>) },
  { title: 'Services', cell: (t) => (t.services ?? []).join(', ') },
];

/** The results of a search: the first page when the search (its URL `key`) changes, more pages appended on demand. */
function useTraceResults(api: Api, search: TraceSearch, key: string) {
  const [state, setState] = useState<{ traces: TraceSummary[]; next: string; error: unknown; loading: boolean; problem: string }>({ traces: [], next: '', error: undefined, loading: true, problem: '' });
  const ctl = useRef<AbortController | undefined>(undefined);
  const load = (token: string) => {
    ctl.current?.abort();
    const c = new AbortController();
    ctl.current = c;
    const req = traceSearchRequest(search, Date.now(), token);
    if ('problem' in req) {
      setState({ traces: [], next: '', error: undefined, loading: false, problem: req.problem });
      return;
    }
    setState((s) => ({ ...s, traces: token ? s.traces : [], loading: true, problem: '' }));
    api.call<SearchTracesResponse>('QueryService', 'SearchTraces', req.body, c.signal).then(
      (r) => !c.signal.aborted && setState((s) => ({ traces: [...(token ? s.traces : []), ...(r.traces ?? [])], next: r.nextPageToken ?? '', error: undefined, loading: false, problem: '' })),
      (error: unknown) => !c.signal.aborted && setState((s) => ({ ...s, error, loading: false })),
    );
  };
  useEffect(() => {
    load('');
    return () => ctl.current?.abort();
  }, [key]);
  return { ...state, more: () => load(state.next) };
}

/** Service and operation pickers, filled from ListServices over the search's window (a value not seen there stays offered). */
function ServicePickers(props: { form: TraceSearch; setForm: (f: TraceSearch) => void }): JSX.Element {
  const { api } = useConsole();
  const { form } = props;
  const listed = useCall((signal) => api.call<ListServicesResponse>('QueryService', 'ListServices', windowRange(form.since, Date.now()), signal), [form.since]);
  const services = (listed.data?.services ?? []).map((s) => s.serviceName);
  if (form.service && !services.includes(form.service)) services.unshift(form.service);
  const operations = (listed.data?.services?.find((s) => s.serviceName === form.service)?.operations ?? []).map((o) => o.spanName);
  if (form.operation && !operations.includes(form.operation)) operations.unshift(form.operation);
  return (
    <>
      <label class="field">
        <span>Service</span>
        <select name="service" value={form.service} onChange={(e) => props.setForm({ ...form, service: e.currentTarget.value, operation: '' })}>
          <option value="">any</option>
          {services.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>Operation</span>
        <select name="operation" value={form.operation} onChange={(e) => props.setForm({ ...form, operation: e.currentTarget.value })} disabled={!form.service}>
          <option value="">any</option>
          {operations.map((o) => (
            <option value={o}>{o}</option>
          ))}
        </select>
      </label>
    </>
  );
}

/** Attribute equality rows (`key` = `value`), at most MAX_ATTRIBUTES. */
function AttributeRows(props: { form: TraceSearch; setForm: (f: TraceSearch) => void }): JSX.Element {
  const { form, setForm } = props;
  const setAttr = (i: number, part: 'key' | 'value', v: string) => setForm({ ...form, attrs: form.attrs.map((a, j) => (j === i ? { ...a, [part]: v } : a)) });
  return (
    <div class="attr-rows" data-testid="attr-rows">
      {form.attrs.map((a, i) => (
        <div class="attr-row">
          <input name={`attr-key-${i}`} value={a.key} onInput={(e) => setAttr(i, 'key', e.currentTarget.value)} placeholder="attribute" aria-label="Attribute key" />
          <span class="muted">=</span>
          <input name={`attr-value-${i}`} value={a.value} onInput={(e) => setAttr(i, 'value', e.currentTarget.value)} placeholder="value" aria-label="Attribute value" />
          <button type="button" onClick={() => setForm({ ...form, attrs: form.attrs.filter((_, j) => j !== i) })} aria-label="Remove the attribute filter">
            ×
          </button>
        </div>
      ))}
      <button type="button" onClick={() => setForm({ ...form, attrs: [...form.attrs, { key: '', value: '' }] })} disabled={form.attrs.length >= MAX_ATTRIBUTES}>
        + Attribute
      </button>
    </div>
  );
}

/** The search form: every SearchTraces filter; submitting puts the search in the URL. */
function SearchForm(props: { search: TraceSearch }): JSX.Element {
  const [form, setForm] = useState(props.search);
  useEffect(() => setForm(props.search), [traceSearchQuery(props.search)]);
  const submit = (e: Event) => {
    e.preventDefault();
    navigate(`${BASE}/traces?${traceSearchQuery(form)}`);
  };
  return (
    <form class="filters card" onSubmit={submit} data-testid="trace-search">
      <ServicePickers form={form} setForm={setForm} />
      <label class="field">
        <span>Min duration</span>
        <input name="min" value={form.min} onInput={(e) => setForm({ ...form, min: e.currentTarget.value })} placeholder="e.g. 250ms" class="short" />
      </label>
      <label class="field">
        <span>Max duration</span>
        <input name="max" value={form.max} onInput={(e) => setForm({ ...form, max: e.currentTarget.value })} placeholder="e.g. 2s" class="short" />
      </label>
      <label class="field">
        <span>Status</span>
        <select name="status" value={form.status} onChange={(e) => setForm({ ...form, status: e.currentTarget.value })}>
          <option value="">any</option>
          {SPAN_STATUSES.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
      </label>
      <TimeRange name="since" value={form.since} onChange={(w) => setForm({ ...form, since: w })} />
      <label class="field">
        <span>Limit</span>
        <select name="limit" value={String(form.limit)} onChange={(e) => setForm({ ...form, limit: Number(e.currentTarget.value) })}>
          {LIMITS.map((n) => (
            <option value={String(n)}>{n}</option>
          ))}
        </select>
      </label>
      <AttributeRows form={form} setForm={setForm} />
      <button type="submit" class="primary">
        Search
      </button>
    </form>
  );
}

/** Trace search (`/ui/traces?...`): the filters live in the URL; results newest first, a scatter of their durations, more on demand. */
export function TraceSearchPage(): JSX.Element {
  const { api } = useConsole();
  const { query } = useLocation();
  const search = readTraceSearch(query);
  const results = useTraceResults(api, search, query.toString());
  return (
    <section>
      <PageHeader title="Traces" />
      <SearchForm search={search} />
      {results.problem && (
        <div class="error" role="alert">
          {results.problem}
        </div>
      )}
      {results.error !== undefined && <ErrorBox error={results.error} />}
      {results.traces.length > 0 && <TraceScatter traces={results.traces} onPick={(id) => navigate(href(`/traces/${id}`))} />}
      <Table testId="traces" columns={columns} rows={results.traces} rowKey={(t) => t.traceId} empty={results.loading ? 'Searching…' : 'No traces match.'} />
      <div class="pager">
        <span class="muted">{results.traces.length > 0 && `${results.traces.length} traces`}</span>
        {results.next && (
          <button onClick={results.more} disabled={results.loading}>
            Load more
          </button>
        )}
      </div>
    </section>
  );
}
