import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { Block, EntityCount, GetDashboardResponse, GetStateResponse, HoneypotHit, Incident, ListActionsResponse, OverLimitCount } from '../api/security-types.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { TimeRange } from '../components/time-range.js';
import { useConsole } from '../context.js';
import { href, navigate, useLocation } from '../router.js';
import { modeName } from '../security-view.js';
import { formatTime, windowRange } from '../time.js';
import { useCall } from '../use-call.js';
import { ActionsTable, OutcomeBox, RequestForms, useActionCall, type Outcome } from './security-actions.js';
import { sinceOf } from './services.js';

/** How often the security view refreshes. */
const REFRESH_MS = 5_000;

const overLimitColumns: Array<Column<OverLimitCount>> = [
  { title: 'Domain', class: 'nowrap', cell: (c) => c.domain },
  { title: 'Limit', class: 'wide mono', cell: (c) => c.descriptor },
  { title: 'Hits over limit', class: 'num', cell: (c) => Number(c.hits ?? 0) },
];
const entityColumns: Array<Column<EntityCount>> = [
  { title: 'Entity', class: 'wide mono', cell: (c) => c.entity },
  { title: 'Hits over limit', class: 'num', cell: (c) => Number(c.hits ?? 0) },
];
const incidentColumns: Array<Column<Incident>> = [
  { title: 'Window', class: 'nowrap', cell: (i) => formatTime(i.time) },
  { title: 'Domain', class: 'nowrap', cell: (i) => i.domain },
  { title: 'Limit', class: 'nowrap mono', cell: (i) => i.descriptor },
  { title: 'Entity', class: 'wide mono', cell: (i) => i.entity },
  { title: 'Hits over limit', class: 'num', cell: (i) => Number(i.hits ?? 0) },
];
const honeypotColumns: Array<Column<HoneypotHit>> = [
  { title: 'Time', class: 'nowrap', cell: (h) => formatTime(h.time) },
  { title: 'Honeypot', class: 'nowrap', cell: (h) => h.honeypot },
  { title: 'Domain', class: 'nowrap', cell: (h) => h.domain },
  { title: 'Descriptor', class: 'wide mono', cell: (h) => h.entries },
  { title: 'Blocked', class: 'mono', cell: (h) => (h.blocked?.length ? h.blocked.join(', ') : '—') },
];

/** The mode, as a badge that stands out when it is not normal. */
function ModeCard(props: { state: GetStateResponse | undefined }): JSX.Element {
  const mode = modeName(props.state?.mode);
  return (
    <div class="card mode-card">
      <span class="muted">Mode</span>
      <span class={`mode-badge mode-${mode}`} data-testid="mode">
        {props.state ? mode : '…'}
      </span>
      {props.state?.pinned && (
        <span class="mode-badge" data-testid="pinned" title="Automation rules leave a pinned mode alone">
          pinned
        </span>
      )}
      <span class="muted" data-testid="mode-detail">
        {props.state?.modeSetBy ? `set by ${props.state.modeSetBy} · ` : ''}
        {props.state?.blocks?.length ?? 0} blocked · {props.state?.pendingActions ?? 0} pending actions
      </span>
    </div>
  );
}

/** Active blocks; an admin may request an unblock (a pending action too). */
function BlocksTable(props: { blocks: Block[]; onDone: (o: Outcome) => void }): JSX.Element {
  const { access } = useConsole();
  const act = useActionCall(props.onDone);
  const columns: Array<Column<Block>> = [
    { title: 'Entity', class: 'mono', cell: (b) => b.entity },
    { title: 'Until', class: 'nowrap', cell: (b) => (b.expiresAt ? formatTime(b.expiresAt) : 'unblocked') },
    { title: 'Reason', class: 'wide', cell: (b) => b.reason },
    { title: 'Requested / approved by', class: 'nowrap', cell: (b) => `${b.requestedBy ?? ''} / ${b.approvedBy ?? ''}` },
  ];
  if (access.admin) {
    columns.push({ title: '', class: 'nowrap actions', cell: (b) => <button onClick={() => act('RequestAction', { unblock: { entity: b.entity }, reason: `unblock requested in the console by ${access.name}` }, 'requested')}>Unblock</button> });
  }
  return <Table testId="blocks" columns={columns} rows={props.blocks} rowKey={(b) => b.entity ?? ''} empty="No entity is blocked." />;
}

/** Over-limit hits in the window: by limit, top offenders, incidents; automatic actions and honeypot hits, newest first (GetDashboard). */
function Dashboard(props: { data: GetDashboardResponse | undefined; loading: boolean; onDone: (o: Outcome) => void }): JSX.Element {
  const empty = props.loading ? 'Loading…' : 'None in this window.';
  return (
    <>
      <div class="two-cols section">
        <div class="card">
          <h2>Top offenders</h2>
          <Table testId="top-entities" columns={entityColumns} rows={props.data?.topEntities ?? []} rowKey={(e) => e.entity ?? ''} empty={empty} />
        </div>
        <div class="card">
          <h2>Over-limit hits by limit</h2>
          <Table testId="over-limit" columns={overLimitColumns} rows={props.data?.overLimit ?? []} rowKey={(c) => `${c.domain ?? ''}/${c.descriptor ?? ''}`} empty={empty} />
        </div>
      </div>
      <div class="card section">
        <h2>Incidents</h2>
        <Table testId="incidents" columns={incidentColumns} rows={props.data?.incidents ?? []} rowKey={(i) => `${i.time ?? ''}/${i.domain ?? ''}/${i.descriptor ?? ''}/${i.entity ?? ''}`} empty={empty} />
      </div>
      <div class="card section">
        <h2>Automatic actions</h2>
        <ActionsTable testId="automatic-actions" actions={props.data?.automaticActions ?? []} loading={props.loading} onDone={props.onDone} empty="None in this window." />
      </div>
      <div class="card section">
        <h2>Honeypot hits</h2>
        <Table testId="honeypot-hits" columns={honeypotColumns} rows={props.data?.honeypotHits ?? []} rowKey={(h) => `${h.time ?? ''}/${h.honeypot ?? ''}/${h.entries ?? ''}`} empty={empty} />
      </div>
    </>
  );
}

/**
 * Rate limits and security (`/ui/security?since=1h`): the mode, blocks, actions (pending first) with
 * approve / reject, request forms, and the window's over-limit dashboard. Needs the admin scope.
 */
export function SecurityPage(): JSX.Element {
  const { api, access } = useConsole();
  const { query } = useLocation();
  const since = sinceOf(query);
  const [outcome, setOutcome] = useState<Outcome>();
  const [version, setVersion] = useState(0);
  const call = <T,>(method: string, body: object) => (signal: AbortSignal) => (access.admin ? api.call<T>('SecurityService', method, body, signal) : Promise.resolve(undefined));
  const state = useCall(call<GetStateResponse>('GetState', {}), [version], REFRESH_MS);
  const actions = useCall(call<ListActionsResponse>('ListActions', {}), [version], REFRESH_MS);
  const dashboard = useCall(call<GetDashboardResponse>('GetDashboard', { ...windowRange(since, Date.now()), top: 10 }), [since, version], REFRESH_MS);
  const onDone = (o: Outcome) => {
    setOutcome(o);
    setVersion((v) => v + 1);
  };
  const header = (
    <PageHeader title="Rate limits and security">
      <TimeRange name="since" value={since} onChange={(w) => navigate(href('/security', { since: w }), true)} />
    </PageHeader>
  );
  if (!access.admin)
    return (
      <section>
        <PageHeader title="Rate limits and security" />
        <div class="card muted">Security needs a token with the admin scope.</div>
      </section>
    );
  const error = state.error ?? actions.error ?? dashboard.error;
  return (
    <section>
      {header}
      {error !== undefined && <ErrorBox error={error} />}
      <ModeCard state={state.data} />
      <OutcomeBox outcome={outcome} me={access.name} />
      <div class="card">
        <h2>Actions</h2>
        <ActionsTable actions={actions.data?.actions ?? []} loading={actions.loading} onDone={onDone} />
      </div>
      <RequestForms onDone={onDone} />
      <div class="card">
        <h2>Blocked entities</h2>
        <BlocksTable blocks={state.data?.blocks ?? []} onDone={onDone} />
      </div>
      <Dashboard data={dashboard.data} loading={dashboard.loading} onDone={onDone} />
    </section>
  );
}
