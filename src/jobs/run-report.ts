import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { submitAgentEvents, type AgentEventSink } from '../events/events.js';
import { Severity } from '../gen/heimdall/v1/events_pb.js';
import { runWithContext } from '../telemetry/context.js';
import type { Logger } from '../telemetry/logger.js';
import type { RunHistory, RunRecord } from './history.js';
import { createJobSeries, type JobSeries } from './job-series.js';

/** What a report needs of a run: its record and who watches it. */
interface Reported {
  readonly record: RunRecord;
  readonly listeners: Set<(r: RunRecord) => void>;
}

/** Tells the world about runs: history, watchers, agent events, metrics and logs. Never throws. */
export interface RunReport {
  /** Saves the run's state and tells its watchers. */
  update(run: Reported): void;
  /** A run started: its `job.run.started` event. */
  started(record: RunRecord): void;
  /** A run ended (its status set): stamps its end, saves it, tells and drops its watchers, its event, metrics and log line. */
  ended(run: Reported): void;
}

/**
 * A scheduled system check's start and success are housekeeping: they stay in run history and metrics,
 * not in the event stream users read (every 30 s they would crowd it); its failures are events.
 */
const housekeeping = (r: RunRecord, what: string): boolean => r.kind === 'system-check' && r.jobName !== '' && (what === 'started' || what === 'succeeded');

/**
 * Creates it; registers heimdall_job_runs_total, heimdall_job_run_duration_seconds and
 * heimdall_job_last_success_timestamp_seconds, labelled `job_name` (see jobLabel) through `series`.
 */
export function createRunReport(options: { history: RunHistory; pipeline: AgentEventSink; logger: Logger; metrics: Registry; series?: JobSeries | undefined }): RunReport {
  const { logger } = options;
  const series = options.series ?? createJobSeries();
  const registers = [options.metrics];
  const runs = new Counter({ name: 'heimdall_job_runs_total', help: 'Job runs ended, by job_name ("(on-demand)" for on-demand runs), kind and status.', labelNames: ['job_name', 'kind', 'status'] as const, registers });
  const duration = new Histogram({ name: 'heimdall_job_run_duration_seconds', help: 'Time from start to end of job runs, by job_name and kind.', labelNames: ['job_name', 'kind'] as const, buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600], registers });
  const lastSuccess = new Gauge({ name: 'heimdall_job_last_success_timestamp_seconds', help: 'When a run of the job last succeeded (unix seconds).', labelNames: ['job_name', 'kind'] as const, registers });

  const update = (l: Reported): void => {
    options.history.save(l.record);
    for (const fn of l.listeners) fn({ ...l.record });
  };
  const event = (r: RunRecord, what: 'started' | 'succeeded' | 'failed' | 'cancelled'): void => {
    if (housekeeping(r, what)) return;
    const severity = what === 'failed' ? Severity.ERROR : what === 'cancelled' ? Severity.WARNING : Severity.INFO;
    const name = r.jobName ? `job ${r.jobName}` : `${r.kind} job`;
    const message = what === 'started' ? `${name} started (${r.trigger}, attempt ${r.attempt})` : `${name} ${what}${r.error ? `: ${r.error}` : r.message ? `: ${r.message}` : ''}`;
    submitAgentEvents(
      options.pipeline,
      [{ source: 'scheduler', correlationId: r.correlationId, eventType: `job.run.${what}`, severity, category: 'jobs', message, actorId: r.jobName || r.kind, status: what, payload: { run: r.id, job: r.jobName, kind: r.kind, trigger: r.trigger, attempt: r.attempt, ...(r.endedAt ? { duration_ms: r.endedAt - r.startedAt } : {}), ...(what === 'succeeded' ? { result: r.result } : {}) } }],
      logger,
    );
  };
  return {
    update,
    started: (r) => event(r, 'started'),
    ended(l) {
      const r = l.record;
      r.endedAt = Date.now();
      update(l);
      l.listeners.clear();
      event(r, r.status as 'succeeded' | 'failed' | 'cancelled');
      runs.inc(series.track(runs, r.jobName, { kind: r.kind, status: r.status }));
      if (r.startedAt > 0) duration.observe(series.track(duration, r.jobName, { kind: r.kind }), (r.endedAt - r.startedAt) / 1000);
      if (r.status === 'succeeded') lastSuccess.set(series.track(lastSuccess, r.jobName, { kind: r.kind }), r.endedAt / 1000);
      const log = { run: r.id, job: r.jobName, kind: r.kind, status: r.status, attempt: r.attempt };
      // The logger adds the context's `correlation_id`, as on every other line; a run ended outside its
      // context (cancelled while queued, interrupted) gets its own here.
      runWithContext({ correlationId: r.correlationId }, () => {
        if (r.status === 'failed') logger.warn({ ...log, error: r.error }, 'job run failed');
        else logger.info(log, `job run ${r.status}`);
      });
    },
  };
}
