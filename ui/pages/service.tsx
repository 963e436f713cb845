import type { JSX } from 'preact';
import type { GetRedSeriesResponse, ListServicesResponse, Operation } from '../api/services-types.js';
import { TimeChart } from '../components/chart.js';
import { Sparkline } from '../components/sparkline.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { TimeRange } from '../components/time-range.js';
import { useConsole } from '../context.js';
import { chartData, formatMs, formatPercent, formatRate, redTotals, seriesOf, windowSeconds, type RedTotals } from '../red.js';
import { href, Link, navigate, useLocation } from '../router.js';
import { windowRange, type Window } from '../time.js';
import { useCall } from '../use-call.js';
import { ErrorsLink, REFRESH_MS, serviceHref, sinceOf, tracesHref } from './services.js';

/** One operation: its spans (ListServices) and its requests (GetRedSeries by span name). */
interface OpRow {
  name: string;
  op: Operation | undefined;
  red: RedTotals | undefined;
  rates: number[];
}

function opRows(service: string, list: ListServicesResponse | undefined, red: GetRedSeriesResponse | undefined): OpRow[] {
  const ops = list?.services?.find((s) => s.serviceName === service)?.operations ?? [];
  const names = new Set([...ops.map((o) => o.spanName ?? ''), ...(red?.series ?? []).map((s) => s.spanName ?? '')]);
  const seconds = red ? windowSeconds(red) : 1;
  return [...names].sort().map((name) => {
    const series = seriesOf(red, service, name);
    return { name, op: ops.find((o) => o.spanName === name), red: series ? redTotals(series, seconds) : undefined, rates: series?.rate ?? [] };
  });
}

function opColumns(service: string, since: Window): Array<Column<OpRow>> {
  const dash = (r: OpRow, f: (t: RedTotals) => string) => (r.red ? f(r.red) : <span class="muted">–</span>);
  return [
    { title: 'Operation', class: 'wide', cell: (r) => <Link href={tracesHref(since, service, r.name)} class="op-link" title="Traces of this operation">{r.name}</Link> },
    { title: 'Spans', class: 'num nowrap', cell: (r) => Number(r.op?.spanCount ?? 0) },
    { title: 'Error spans', class: 'num nowrap', cell: (r) => <ErrorsLink errors={Number(r.op?.errorCount ?? 0)} to={tracesHref(since, service, r.name, true)} /> },
    { title: 'Requests/s', class: 'num nowrap', cell: (r) => dash(r, (t) => formatRate(t.rate)) },
    { title: 'Errors', class: 'num nowrap', cell: (r) => dash(r, (t) => `${t.errors} (${formatPercent(t.errorRate)})`) },
    { title: 'p95 (peak)', class: 'num nowrap', cell: (r) => dash(r, (t) => formatMs(t.p95PeakMs)) },
    { title: 'Requests over time', cell: (r) => (r.red ? <Sparkline values={r.rates} title={`${r.name}: requests per second`} /> : '') },
  ];
}

/** The three RED charts of one series: requests/s, error rate, p50/p95/p99 duration, over the answer's buckets. */
function RedCharts(props: { red: GetRedSeriesResponse; service: string }): JSX.Element {
  const s = seriesOf(props.red, props.service);
  if (!s) return <div class="card muted">No requests (entry spans of kind server or consumer) in this window.</div>;
  return (
    <div class="charts" data-testid="red-charts">
      <div class="card">
        <TimeChart title="Requests per second" series={[{ label: 'requests/s', stroke: '#2656c9' }]} data={chartData(props.red, s, ['rate'])} testId="chart-rate" />
      </div>
      <div class="card">
        <TimeChart title="Error rate (%)" series={[{ label: 'errors %', stroke: '#c62828' }]} data={chartData(props.red, s, ['errorRate'])} testId="chart-errors" />
      </div>
      <div class="card">
        <TimeChart
          title="Duration (ms)"
          series={[
            { label: 'p50', stroke: '#2f7d32' },
            { label: 'p95', stroke: '#b26a00' },
            { label: 'p99', stroke: '#c62828' },
          ]}
          data={chartData(props.red, s, ['p50Ms', 'p95Ms', 'p99Ms'])}
          testId="chart-duration"
        />
      </div>
    </div>
  );
}

/** One service (`/ui/services/<name>?since=1h`): its totals, RED charts, and a table of its operations linked to the trace search. */
export function ServicePage(props: { service: string }): JSX.Element {
  const { api } = useConsole();
  const { query } = useLocation();
  const since = sinceOf(query);
  const service = props.service;
  const call = <T,>(method: string, body: object) => (signal: AbortSignal) => api.call<T>('QueryService', method, { ...windowRange(since, Date.now()), ...body }, signal);
  const red = useCall(call<GetRedSeriesResponse>('GetRedSeries', { serviceName: service, maxBuckets: 60 }), [since, service], REFRESH_MS);
  const ops = useCall(call<GetRedSeriesResponse>('GetRedSeries', { serviceName: service, bySpanName: true, maxSeries: 100, maxBuckets: 30 }), [since, service], REFRESH_MS);
  const list = useCall(call<ListServicesResponse>('ListServices', { maxServices: 1000, maxOperations: 1000 }), [since, service], REFRESH_MS);
  const totals = red.data ? redTotals(seriesOf(red.data, service), windowSeconds(red.data)) : undefined;
  const spans = list.data?.services?.find((s) => s.serviceName === service);
  const error = red.error ?? ops.error ?? list.error;
  const stat = (label: string, value: string | number | undefined, testId: string) => (
    <div class="stat" data-testid={testId}>
      <div class="stat-value">{value ?? '…'}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
  return (
    <section>
      <PageHeader title={`Service ${service}`}>
        <Link href={href('/services', { since })}>All services</Link>
        <Link href={tracesHref(since, service)}>Traces</Link>
        <TimeRange name="since" value={since} onChange={(w) => navigate(serviceHref(service, w), true)} />
      </PageHeader>
      {error !== undefined && <ErrorBox error={error} />}
      <div class="stats">
        {stat('requests/s (entry spans)', totals && formatRate(totals.rate), 'stat-rate')}
        {stat('error rate', totals && formatPercent(totals.errorRate), 'stat-error-rate')}
        {stat('p95 (peak of the buckets)', totals && formatMs(totals.p95PeakMs), 'stat-p95')}
        {stat('spans', spans ? Number(spans.spanCount ?? 0) : list.data && 0, 'stat-spans')}
        {stat('error spans', spans ? Number(spans.errorCount ?? 0) : list.data && 0, 'stat-errors')}
      </div>
      {red.data && <RedCharts red={red.data} service={service} />}
      <div class="card section">
        <h2>Operations</h2>
        <Table testId="operations" columns={opColumns(service, since)} rows={opRows(service, list.data, ops.data)} rowKey={(r) => r.name} empty={list.loading || ops.loading ? 'Loading…' : 'No operations in this window.'} />
        {(spans?.operationsTruncated || ops.data?.truncated) && <p class="muted truncated">Only the busiest operations are listed.</p>}
      </div>
    </section>
  );
}
