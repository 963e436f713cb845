import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { Action, ActionResponse } from '../api/security-types.js';
import { StateBadge } from '../components/severity.js';
import { ErrorBox } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { useConsole } from '../context.js';
import { actionState, describeChange, MODES, sortActions } from '../security-view.js';
import { formatTime } from '../time.js';

/** What a request or decision answered: the action, or the server's refusal (shown as it came). */
export type Outcome = { action: Action; verb: 'requested' | 'approved' | 'rejected' } | { error: unknown };

/** The outcome of the last request or decision, in words; a request says that a second admin must approve it. */
export function OutcomeBox(props: { outcome: Outcome | undefined; me: string }): JSX.Element | null {
  const o = props.outcome;
  if (!o) return null;
  if ('error' in o)
    return (
      <div data-testid="action-error">
        <ErrorBox error={o.error} />
      </div>
    );
  const a = o.action;
  const text =
    o.verb === 'requested'
      ? `Action ${a.id ?? ''} (${describeChange(a)}) is pending: a second admin (not ${props.me || 'you'}) must approve it before it applies.`
      : `Action ${a.id ?? ''} (${describeChange(a)}) ${o.verb}: now ${actionState(a)}.`;
  return (
    <div class="notice" role="status" data-testid="action-notice">
      {text}
    </div>
  );
}

/** Calls a SecurityService method that answers an action; reports the outcome either way. */
export function useActionCall(onDone: (o: Outcome) => void): (method: string, body: object, verb: 'requested' | 'approved' | 'rejected') => void {
  const { api } = useConsole();
  return (method, body, verb) => {
    api.call<ActionResponse>('SecurityService', method, body).then(
      (r) => onDone(r.action ? { action: r.action, verb } : { error: new Error('the answer held no action') }),
      (error: unknown) => onDone({ error }),
    );
  };
}

/** Actions, pending first, with approve and reject on pending ones for admins. */
export function ActionsTable(props: { actions: Action[]; loading: boolean; onDone: (o: Outcome) => void; testId?: string; empty?: string }): JSX.Element {
  const { access } = useConsole();
  const act = useActionCall(props.onDone);
  const columns: Array<Column<Action>> = [
    { title: 'State', cell: (a) => <StateBadge state={actionState(a)} /> },
    { title: 'Change', class: 'nowrap', cell: (a) => <span title={`action ${a.id ?? ''}`}>{describeChange(a)}</span> },
    { title: 'Reason', class: 'wide reason', cell: (a) => a.reason },
    { title: 'Requested by', class: 'nowrap', cell: (a) => a.requestedBy },
    { title: 'Decided by', class: 'nowrap', cell: (a) => a.decidedBy || <span class="muted">–</span> },
    { title: 'Created', class: 'nowrap', cell: (a) => formatTime(a.createdAt) },
    { title: 'Decided / expires', class: 'nowrap', cell: (a) => (actionState(a) === 'pending' ? `expires ${formatTime(a.expiresAt)}` : formatTime(a.decidedAt)) },
  ];
  if (access.admin) {
    columns.push({
      title: '',
      class: 'nowrap actions',
      cell: (a) =>
        actionState(a) === 'pending' ? (
          <>
            <button onClick={() => act('ApproveAction', { id: a.id }, 'approved')}>Approve</button>
            <button onClick={() => act('RejectAction', { id: a.id, reason: `rejected in the console by ${access.name}` }, 'rejected')}>Reject</button>
          </>
        ) : null,
    });
  }
  return <Table testId={props.testId ?? 'actions'} columns={columns} rows={sortActions(props.actions)} rowKey={(a) => a.id ?? ''} empty={props.loading ? 'Loading…' : (props.empty ?? 'No actions.')} />;
}

/** Block durations offered, in seconds (0: until unblocked). */
const DURATIONS: Array<[string, number]> = [
  ['15 minutes', 900],
  ['1 hour', 3_600],
  ['24 hours', 86_400],
  ['until unblocked', 0],
];

/** Admin forms that request a mode change or a block: each creates a pending action a second admin approves. */
export function RequestForms(props: { onDone: (o: Outcome) => void }): JSX.Element {
  const act = useActionCall(props.onDone);
  const [mode, setMode] = useState<string>('lockdown');
  const [modeReason, setModeReason] = useState('');
  const [pin, setPin] = useState(false);
  const [entity, setEntity] = useState('');
  const [duration, setDuration] = useState(3_600);
  const [blockReason, setBlockReason] = useState('');
  const requestMode = (e: Event) => {
    e.preventDefault();
    act('RequestAction', { setMode: { mode: `SECURITY_MODE_${mode.toUpperCase()}`, pin }, reason: modeReason }, 'requested');
  };
  const requestBlock = (e: Event) => {
    e.preventDefault();
    act('RequestAction', { block: { entity: entity.trim(), reason: blockReason, durationSeconds: duration }, reason: blockReason }, 'requested');
  };
  return (
    <>
      <p class="muted">Every change is requested by one admin and waits, pending, until a second admin approves it.</p>
      <div class="requests">
        <form class="card filters" onSubmit={requestMode} data-testid="request-mode">
          <h2>Request a mode change</h2>
          <label class="field">
            <span>Mode</span>
            <select name="mode" value={mode} onChange={(e) => setMode(e.currentTarget.value)}>
              {MODES.map((m) => (
                <option value={m}>{m}</option>
              ))}
            </select>
          </label>
          <label class="field grow">
            <span>Reason</span>
            <input name="reason" value={modeReason} placeholder="why" onInput={(e) => setModeReason(e.currentTarget.value)} />
          </label>
          <label class="field" title="Automation rules leave a pinned mode alone until a mode is set without pin">
            <span>Pin</span>
            <input type="checkbox" name="pin" checked={pin} onChange={(e) => setPin(e.currentTarget.checked)} />
          </label>
          <button type="submit" class="primary">
            Request mode change
          </button>
        </form>
        <form class="card filters" onSubmit={requestBlock} data-testid="request-block">
          <h2>Request a block</h2>
          <label class="field grow">
            <span>Entity (descriptor key=value)</span>
            <input name="entity" value={entity} placeholder="remote_address=203.0.113.7" onInput={(e) => setEntity(e.currentTarget.value)} />
          </label>
          <label class="field">
            <span>For</span>
            <select name="duration" value={String(duration)} onChange={(e) => setDuration(Number(e.currentTarget.value))}>
              {DURATIONS.map(([label, s]) => (
                <option value={String(s)}>{label}</option>
              ))}
            </select>
          </label>
          <label class="field grow">
            <span>Reason</span>
            <input name="reason" value={blockReason} placeholder="why" onInput={(e) => setBlockReason(e.currentTarget.value)} />
          </label>
          <button type="submit" class="primary">
            Request block
          </button>
        </form>
      </div>
    </>
  );
}
