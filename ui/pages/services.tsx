import type { JSX } from 'preact';
import type { GetRedSeriesResponse, ListServicesResponse, ServiceOperations } from '../api/services-types.js';
import { Sparkline } from '../components/sparkline.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { TimeRange } from '../components/time-range.js';
import { useConsole } from '../context.js';
import { formatMs, formatPercent, formatRate, redTotals, seriesOf, windowSeconds, type RedTotals } from '../red.js';
import { href, Link, navigate, useLocation } from '../router.js';
import { isWindow, windowRange, type Window } from '../time.js';
import { useCall } from '../use-call.js';
import '../services-security.css';

/** How often the services views refresh. */
export const REFRESH_MS = 15_000;

/** The window of a services URL (`?since=1h`); the last hour when absent or not offered. */
export function sinceOf(query: URLSearchParams): Window {
  const s = query.get('since');
  return isWindow(s) ? s : '1h';
}

/** The trace search of a service (and operation), only its error traces with `errors`, over the same window. */
export function tracesHref(since: Window, service: string, operation?: string, errors = false): string {
  return href('/traces', { service, operation, status: errors ? 'error' : undefined, since });
}

/** The page of one service. */
export const serviceHref = (service: string, since: Window): string => href(`/services/${encodeURIComponent(service)}`, { since });

/** A spans count with its errors linked to the error traces (red when there are some). */
export function ErrorsLink(props: { errors: number; to: string }): JSX.Element {
  return props.errors > 0 ? (
    <Link href={props.to} class="err-count" title="Traces with errors">
      {props.errors}
    </Link>
  ) : (
    <span>0</span>
  );
}

/** One row of the list: the spans of ListServices, the requests of GetRedSeries. */
interface Row {
  name: string;
  service: ServiceOperations | undefined;
  red: RedTotals | undefined;
  rates: number[];
}

function rowsOf(list: ListServicesResponse | undefined, red: GetRedSeriesResponse | undefined): Row[] {
  const names = new Set([...(list?.services ?? []).map((s) => s.serviceName ?? ''), ...(red?.series ?? []).map((s) => s.serviceName ?? '')]);
  const seconds = red ? windowSeconds(red) : 1;
  return [...names].sort().map((name) => {
    const series = seriesOf(red, name);
    return { name, service: list?.services?.find((s) => s.serviceName === name), red: series ? redTotals(series, seconds) : undefined, rates: series?.rate ?? [] };
  });
}

function columns(since: Window): Array<Column<Row>> {
  const dash = (r: Row, f: (t: RedTotals) => string) => (r.red ? f(r.red) : <span class="muted">–</span>);
  return [
    { title: 'Service', class: 'nowrap', cell: (r) => <Link href={serviceHref(r.name, since)}>{r.name}</Link> },
    { title: 'Spans', class: 'num nowrap', cell: (r) => Number(r.service?.spanCount ?? 0) },
    { title: 'Error spans', class: 'num nowrap', cell: (r) => <ErrorsLink errors={Number(r.service?.errorCount ?? 0)} to={tracesHref(since, r.name, undefined, true)} /> },
    { title: 'Requests/s', class: 'num nowrap', cell: (r) => dash(r, (t) => formatRate(t.rate)) },
    { title: 'Error rate', class: 'num nowrap', cell: (r) => dash(r, (t) => formatPercent(t.errorRate)) },
    { title: 'p95 (peak)', class: 'num nowrap', cell: (r) => dash(r, (t) => formatMs(t.p95PeakMs)) },
    { title: 'Requests over time', cell: (r) => (r.red ? <Sparkline values={r.rates} title={`${r.name}: requests per second`} /> : '') },
    { title: '', class: 'nowrap', cell: (r) => <Link href={tracesHref(since, r.name)}>traces</Link> },
  ];
}

/**
 * Services seen in the window (`/ui/services?since=1h`): spans and error spans of each (ListServices);
 * requests/s, error rate, peak p95 and a sparkline of its entry spans (GetRedSeries). A service is
 * `/ui/services/<name>`.
 */
export function ServicesPage(): JSX.Element {
  const { api } = useConsole();
  const { query } = useLocation();
  const since = sinceOf(query);
  const list = useCall((signal) => api.call<ListServicesResponse>('QueryService', 'ListServices', { ...windowRange(since, Date.now()), maxOperations: 1 }, signal), [since], REFRESH_MS);
  const red = useCall((signal) => api.call<GetRedSeriesResponse>('QueryService', 'GetRedSeries', { ...windowRange(since, Date.now()), maxSeries: 100, maxBuckets: 30 }, signal), [since], REFRESH_MS);
  const rows = rowsOf(list.data, red.data);
  const error = list.error ?? red.error;
  return (
    <section>
      <PageHeader title="Services">
        <TimeRange name="since" value={since} onChange={(w) => navigate(href('/services', { since: w }), true)} />
      </PageHeader>
      {error !== undefined && <ErrorBox error={error} />}
      <div class="card">
        <Table testId="services" columns={columns(since)} rows={rows} rowKey={(r) => r.name} empty={list.loading || red.loading ? 'Loading…' : 'No spans in this window.'} />
        {(list.data?.truncated || red.data?.truncated) && <p class="muted truncated">Only the busiest services are listed.</p>}
        <p class="muted truncated">Requests are entry spans (kind server or consumer); p95 (peak) is the highest p95 of the window's time buckets.</p>
      </div>
    </section>
  );
}
