import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ComponentStatus, GetStatusResponse } from '../api/types.js';
import { TimeChart } from '../components/chart.js';
import { StateBadge } from '../components/severity.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { useConsole } from '../context.js';
import { sumByName, total } from '../metrics-text.js';
import { formatBytes, formatDuration, formatTime } from '../time.js';
import { useCall } from '../use-call.js';

/** How often the overview refreshes. */
const REFRESH_MS = 5_000;
/** Samples kept for the rate chart (10 minutes at 5 s). */
const MAX_SAMPLES = 120;

/** One reading of the agent's own counters (GET /metrics). */
interface Sample {
  at: number;
  accepted: number;
  refused: number;
  queueBytes: number;
  queueCapacity: number;
  storageBytes: number;
  storageLimit: number;
  storageReachable: number;
}

function sampleOf(text: string, at: number): Sample {
  const m = sumByName(text);
  return {
    at,
    accepted: total(m, /^heimdall_receiver_accepted_.*_total$/) + (m.get('heimdall_events_accepted_total') ?? 0),
    refused: total(m, /^heimdall_receiver_(refused|rejected|failed)_.*_total$/),
    queueBytes: m.get('heimdall_exporter_queue_bytes') ?? 0,
    queueCapacity: m.get('heimdall_exporter_queue_capacity_bytes') ?? 0,
    storageBytes: m.get('heimdall_storage_bytes') ?? 0,
    storageLimit: m.get('heimdall_storage_limit_bytes') ?? 0,
    storageReachable: m.get('heimdall_storage_reachable') ?? 0,
  };
}

/** Rates per second between consecutive samples, as uPlot data: [times, accepted/s, refused/s]. */
function rates(samples: Sample[]): Array<Array<number | null>> {
  const out: Array<Array<number | null>> = [[], [], []];
  for (let i = 1; i < samples.length; i += 1) {
    const a = samples[i - 1] as Sample;
    const b = samples[i] as Sample;
    const dt = (b.at - a.at) / 1000;
    out[0]?.push(b.at / 1000);
    out[1]?.push(Math.max(0, b.accepted - a.accepted) / dt);
    out[2]?.push(Math.max(0, b.refused - a.refused) / dt);
  }
  return out;
}

/** Reads /metrics every REFRESH_MS; keeps the last MAX_SAMPLES readings. */
function useSamples(): { samples: Sample[]; error: unknown } {
  const { api } = useConsole();
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const ctl = new AbortController();
    const read = () =>
      api.text('/metrics', ctl.signal).then(
        (text) => {
          setError(undefined);
          setSamples((s) => [...s, sampleOf(text, Date.now())].slice(-MAX_SAMPLES));
        },
        (err: unknown) => !ctl.signal.aborted && setError(err),
      );
    void read();
    const timer = setInterval(() => void read(), REFRESH_MS);
    return () => {
      ctl.abort();
      clearInterval(timer);
    };
  }, []);
  return { samples, error };
}

const componentColumns: Array<Column<ComponentStatus>> = [
  { title: 'Component', class: 'nowrap', cell: (c) => c.name },
  { title: 'State', cell: (c) => <StateBadge state={(c.state ?? '').replace('COMPONENT_STATE_', '') || 'unknown'} /> },
  { title: 'Gates', cell: (c) => (c.gate ?? '').replace('READINESS_GATE_', '').toLowerCase() },
  { title: 'Since', class: 'nowrap', cell: (c) => formatTime(c.since) },
  { title: 'Reason', class: 'wide', cell: (c) => c.reason },
];

function Stat(props: { label: string; value: string; testId?: string }): JSX.Element {
  return (
    <div class="stat" data-testid={props.testId}>
      <div class="stat-value">{props.value}</div>
      <div class="stat-label">{props.label}</div>
    </div>
  );
}

/** Overview: the agent's status and components (scope admin), ingest and refusal rates, queue and storage; refreshed every 5 s. */
export function OverviewPage(): JSX.Element {
  const { api, access } = useConsole();
  const status = useCall((signal) => (access.admin ? api.call<GetStatusResponse>('SystemService', 'GetStatus', {}, signal) : Promise.resolve(undefined)), [], REFRESH_MS);
  const { samples, error } = useSamples();
  const last = samples[samples.length - 1];
  const series = rates(samples);
  const lastRate = series[1]?.[series[1].length - 1];
  const s = status.data;
  return (
    <section>
      <PageHeader title="Overview">{s && <StateBadge state={(s.status ?? '').replace('OVERALL_STATUS_', '') || 'unknown'} />}</PageHeader>
      <div class="stats">
        {s && <Stat label={`version ${s.version ?? ''}`} value={formatDuration(s.uptimeSeconds ?? 0)} testId="uptime" />}
        <Stat label="items accepted / s" value={lastRate == null ? '…' : lastRate.toFixed(1)} testId="ingest-rate" />
        <Stat label="items refused or rejected" value={last ? String(last.refused) : '…'} testId="refusals" />
        <Stat label={last?.queueCapacity ? `queue of ${formatBytes(last.queueCapacity)}` : 'durable queue'} value={last ? (last.queueCapacity ? formatBytes(last.queueBytes) : 'off') : '…'} testId="queue" />
        <Stat label={last?.storageLimit ? `stored of ${formatBytes(last.storageLimit)}` : 'stored'} value={last ? `${formatBytes(last.storageBytes)}${last.storageReachable ? '' : ' (unreachable)'}` : '…'} testId="storage" />
      </div>
      {error !== undefined && <ErrorBox error={error} />}
      <div class="card">
        {(series[0]?.length ?? 0) >= 2 ? (
          <TimeChart title="Items per second (since this page opened)" series={[{ label: 'accepted', stroke: '#2f7d32' }, { label: 'refused', stroke: '#c62828' }]} data={series} testId="ingest-chart" />
        ) : (
          <p class="muted chart-wait">Items per second: the chart starts after three readings of /metrics, 5 s apart.</p>
        )}
      </div>
      {access.admin ? (
        <div class="card">
          <h2>Components</h2>
          {status.error !== undefined && <ErrorBox error={status.error} />}
          {s?.reasons?.length ? <p class="muted">Not ready: {s.reasons.join('; ')}</p> : null}
          <Table testId="components" columns={componentColumns} rows={s?.components ?? []} rowKey={(c) => c.name} empty={status.loading ? 'Loading…' : 'No components.'} />
        </div>
      ) : (
        <div class="card muted">The components' states and reasons need a token with the admin scope.</div>
      )}
    </section>
  );
}
