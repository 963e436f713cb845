import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Job, JobResponse, ListRunsResponse, ListScheduledJobsResponse, ScheduledJob } from '../api/types.js';
import { StateBadge } from '../components/severity.js';
import { ErrorBox, PageHeader } from '../components/status.js';
import { Table, type Column } from '../components/table.js';
import { useConsole } from '../context.js';
import { href, Link, navigate, useLocation } from '../router.js';
import { formatTime } from '../time.js';
import { useCall } from '../use-call.js';

/** Task kinds an on-demand job may run, with example parameters to start from. */
const KINDS: Record<string, string> = {
  'system-check': '{}',
  retention: '{"dry_run": true}',
  export: '{"source": "logs", "since": "1h", "format": "jsonl"}',
  'http-check': '{"url": "http://127.0.0.1:9464/livez"}',
};

const word = (value: string | undefined, prefix: string): string => (value ?? '').replace(prefix, '').toLowerCase() || 'unspecified';
const status = (j: Job | undefined): string => word(j?.status, 'JOB_STATUS_');

const runColumns: Array<Column<Job>> = [
  { title: 'Created', class: 'nowrap', cell: (j) => formatTime(j.createdAt) },
  { title: 'Job', class: 'nowrap', cell: (j) => (j.jobName ? <Link href={href('/jobs', { job: j.jobName })}>{j.jobName}</Link> : <em>on demand</em>) },
  { title: 'Kind', class: 'nowrap', cell: (j) => j.kind },
  { title: 'Trigger', cell: (j) => word(j.trigger, 'JOB_TRIGGER_') },
  { title: 'Status', cell: (j) => <StateBadge state={status(j)} /> },
  { title: 'Progress', class: 'num', cell: (j) => `${j.progress ?? 0}%` },
  { title: 'Message', class: 'wide', cell: (j) => j.error || j.message },
  { title: 'Events', class: 'nowrap', cell: (j) => (j.correlationId ? <Link href={href('/events', { correlation: j.correlationId })}>events</Link> : '') },
  { title: '', class: 'nowrap', cell: (j) => <Link href={href('/jobs', { watch: j.id })}>watch</Link> },
];

/** Scheduled jobs with pause / resume / trigger for admins. */
function ScheduledJobs(props: { onChange: () => void }): JSX.Element {
  const { api, access } = useConsole();
  const list = useCall((signal) => api.call<ListScheduledJobsResponse>('JobService', 'ListScheduledJobs', {}, signal), [], 5_000);
  const [error, setError] = useState<unknown>();
  const act = (method: string, name: string) => () => {
    setError(undefined);
    api.call<JobResponse>('JobService', method, { name }).then(() => {
      list.reload();
      props.onChange();
    }, setError);
  };
  const columns: Array<Column<ScheduledJob>> = [
    { title: 'Name', class: 'nowrap', cell: (j) => <Link href={href('/jobs', { job: j.name })}>{j.name}</Link> },
    { title: 'Schedule', class: 'mono nowrap', cell: (j) => `${j.schedule ?? ''}${j.timeZone ? ` (${j.timeZone})` : ''}` },
    { title: 'Kind', cell: (j) => j.kind },
    { title: 'State', cell: (j) => <StateBadge state={j.paused ? 'paused' : 'active'} /> },
    { title: 'Next run', class: 'nowrap', cell: (j) => (j.paused ? '' : formatTime(j.nextRunTime)) },
    { title: 'Last run', cell: (j) => (j.lastRun ? <StateBadge state={status(j.lastRun)} /> : '') },
  ];
  if (access.admin) {
    columns.push({
      title: '',
      class: 'nowrap actions',
      cell: (j) => (
        <>
          {j.paused ? <button onClick={act('ResumeScheduledJob', j.name)}>Resume</button> : <button onClick={act('PauseScheduledJob', j.name)}>Pause</button>}
          <button onClick={act('TriggerScheduledJob', j.name)}>Trigger</button>
        </>
      ),
    });
  }
  return (
    <div class="card">
      <h2>Scheduled jobs</h2>
      {(list.error ?? error) !== undefined && <ErrorBox error={list.error ?? error} />}
      <Table testId="scheduled-jobs" columns={columns} rows={list.data?.jobs ?? []} rowKey={(j) => j.name} empty={list.loading ? 'Loading…' : 'No scheduled jobs.'} />
    </div>
  );
}

/** Submits an on-demand job and goes to its progress. */
function SubmitForm(): JSX.Element {
  const { api } = useConsole();
  const [kind, setKind] = useState('system-check');
  const [params, setParams] = useState(KINDS['system-check'] ?? '{}');
  const [error, setError] = useState<unknown>();
  const submit = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    let parsed: unknown;
    try {
      parsed = JSON.parse(params);
    } catch {
      setError(new Error('parameters: not valid JSON'));
      return;
    }
    api.call<JobResponse>('JobService', 'SubmitJob', { kind, params: parsed }).then((r) => navigate(href('/jobs', { watch: r.job?.id })), setError);
  };
  return (
    <form class="card filters" onSubmit={submit} data-testid="submit-job">
      <h2>Run a job now</h2>
      <label class="field">
        <span>Kind</span>
        <select name="kind" value={kind} onChange={(e) => {
          const k = (e.currentTarget).value;
          setKind(k);
          setParams(KINDS[k] ?? '{}');
        }}>
          {Object.keys(KINDS).map((k) => (
            <option value={k}>{k}</option>
          ))}
        </select>
      </label>
      <label class="field grow">
        <span>Parameters (JSON)</span>
        <textarea name="params" rows={2} value={params} onInput={(e) => setParams((e.currentTarget).value)} />
      </label>
      <button type="submit" class="primary">
        Submit
      </button>
      {error !== undefined && <ErrorBox error={error} />}
    </form>
  );
}

/** Follows one run through WatchJob (a server stream): its status, progress bar and message as they change. */
function WatchPanel(props: { id: string; onEnd: () => void }): JSX.Element {
  const { api } = useConsole();
  const [job, setJob] = useState<Job>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const ctl = new AbortController();
    setJob(undefined);
    setError(undefined);
    api
      .stream<JobResponse>('JobService', 'WatchJob', { id: props.id }, (m) => m.job && setJob(m.job), ctl.signal)
      .then(props.onEnd, (err: unknown) => !ctl.signal.aborted && setError(err));
    return () => ctl.abort();
  }, [props.id]);
  const progress = job?.progress ?? 0;
  return (
    <div class="card" data-testid="watch-job">
      <h2>
        Run <span class="mono">{props.id}</span> {job && <StateBadge state={status(job)} />}
      </h2>
      <div class="progress-row">
        <progress max={100} value={progress} data-progress={progress} />
        <span class="num">{progress}%</span>
      </div>
      <p class="muted">{job ? job.error || job.message || `${job.kind ?? ''} ${status(job)}` : 'Waiting for the job…'}</p>
      {error !== undefined && <ErrorBox error={error} />}
    </div>
  );
}

/** Jobs: scheduled jobs (pause, resume, trigger), an on-demand job with its progress, run history. Needs scope admin. */
export function JobsPage(): JSX.Element {
  const { api, access } = useConsole();
  const { query } = useLocation();
  const job = query.get('job') ?? '';
  const watch = query.get('watch') ?? '';
  const runs = useCall((signal) => (access.admin ? api.call<ListRunsResponse>('JobService', 'ListRuns', { jobName: job, pageSize: 25 }, signal) : Promise.resolve<ListRunsResponse>({})), [job], 5_000);
  if (!access.admin) {
    return (
      <section>
        <PageHeader title="Jobs" />
        <div class="card muted">Jobs need a token with the admin scope.</div>
      </section>
    );
  }
  return (
    <section>
      <PageHeader title="Jobs" />
      <ScheduledJobs onChange={runs.reload} />
      <SubmitForm />
      {watch && <WatchPanel id={watch} onEnd={runs.reload} />}
      <div class="card">
        <h2>
          Runs{job ? ` of ${job}` : ''} {job && <Link href={href('/jobs')}>(all)</Link>}
        </h2>
        {runs.error !== undefined && <ErrorBox error={runs.error} />}
        <Table testId="runs" columns={runColumns} rows={runs.data?.runs ?? []} rowKey={(j) => j.id ?? ''} empty={runs.loading ? 'Loading…' : 'No runs yet.'} />
      </div>
    </section>
  );
}
