import { Counter, Gauge, type Registry } from 'prom-client';
import { formatMs } from '../config/units.js';
import { JobError } from './errors.js';
import { exportWindowRefusal } from './kinds/export.js';
import type { LiveRun, Runner } from './runner.js';
import type { TaskSpec } from './spec.js';

/** Options for createOnDemandQueue. */
export interface OnDemandQueueOptions {
  runner: Pick<Runner, 'live' | 'execute' | 'finish'>;
  /** On-demand runs at once (`jobs.max_concurrent`). */
  maxConcurrent: number;
  /** Runs waiting past which a submit is refused while every slot is busy (`jobs.queue_size`). */
  queueSize: number;
  /** Runs of one tenant pending or running (`jobs.max_submitted_per_tenant`). */
  maxSubmittedPerTenant: number;
  /** Longest timeout of a tenant's job (`jobs.tenant_max_timeout`). */
  tenantMaxTimeoutMs: number;
  /** Widest window an export may read (`query.max_window`). */
  maxWindowMs: number;
  /** True once the agent stops: nothing more starts. */
  stopped: () => boolean;
  /** Called as runs start and end. */
  onChange: () => void;
  metrics: Registry;
}

/** The queue of on-demand runs: pending runs in order, at most `maxConcurrent` running. */
export interface OnDemandQueue {
  /**
   * Throws a JobError (and counts it in heimdall_job_submit_refused_total) when a job cannot be
   * queued: an export wider than query.max_window, a tenant's timeout or count past its caps, a full queue.
   */
  admit(task: TaskSpec, tenant: string | undefined): void;
  /** Queues a pending run and starts what fits. */
  push(live: LiveRun): void;
  /** Takes a pending run out of the queue and ends it as cancelled; false when it is not waiting here (it runs). */
  cancelPending(live: LiveRun): boolean;
  /** Runs waiting. */
  readonly length: number;
}

/** Creates the queue. Owns the pending and running on-demand runs. */
export function createOnDemandQueue(options: OnDemandQueueOptions): OnDemandQueue {
  const { runner } = options;
  const queue: LiveRun[] = [];
  const running = new Set<LiveRun>();
  const refusals = new Counter({
    name: 'heimdall_job_submit_refused_total',
    help: 'SubmitJob calls refused by a limit, by limit (queue_size, max_submitted_per_tenant, tenant_max_timeout, max_window).',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  new Gauge({ name: 'heimdall_job_queue_depth', help: 'On-demand jobs waiting to run.', registers: [options.metrics], collect() { this.set(queue.length); } });
  const refuse = (limit: string, code: JobError['code'], message: string): never => {
    refusals.inc({ limit });
    throw new JobError(code, message);
  };
  const pump = (): void => {
    while (!options.stopped() && running.size < options.maxConcurrent && queue.length > 0) {
      const l = queue.shift();
      if (!l || !runner.live(l.record.id)) continue;
      running.add(l);
      void runner.execute(l).finally(() => {
        running.delete(l);
        pump();
        options.onChange();
      });
    }
    options.onChange();
  };
  return {
    admit(task, tenant) {
      const window = exportWindowRefusal(task, Date.now(), options.maxWindowMs);
      if (window) refuse('max_window', 'invalid_argument', window);
      if (tenant !== undefined) {
        if (task.timeout > options.tenantMaxTimeoutMs) {
          refuse('tenant_max_timeout', 'invalid_argument', `job.timeout: at most ${formatMs(options.tenantMaxTimeoutMs)} for a token bound to a tenant (jobs.tenant_max_timeout), got ${formatMs(task.timeout)}`);
        }
        const own = [...queue, ...running].filter((l) => (l.record.params as { tenant?: unknown }).tenant === tenant).length;
        if (own >= options.maxSubmittedPerTenant) {
          refuse('max_submitted_per_tenant', 'resource_exhausted', `tenant ${JSON.stringify(tenant)} has ${own} jobs pending or running (jobs.max_submitted_per_tenant ${options.maxSubmittedPerTenant}); retry when one has ended`);
        }
      }
      if (queue.length >= options.queueSize && running.size >= options.maxConcurrent) {
        refuse('queue_size', 'resource_exhausted', `the job queue is full (${queue.length} waiting, ${running.size} running; jobs.queue_size ${options.queueSize}); retry later`);
      }
    },
    push(l) {
      queue.push(l);
      pump();
    },
    cancelPending(l) {
      const i = queue.indexOf(l);
      if (i < 0) return false;
      queue.splice(i, 1);
      runner.finish(l, 'cancelled', 'cancelled before it started');
      options.onChange();
      return true;
    },
    get length() {
      return queue.length;
    },
  };
}
