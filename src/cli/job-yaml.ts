import { durationMs, type Duration } from '@bufbuild/protobuf/wkt';
import { stringify } from 'yaml';
import { formatMs } from '../config/units.js';
import { Concurrency, JobScope, MisfirePolicy, type ScheduledJob } from '../gen/heimdall/v1/jobs_pb.js';

const text = (d: Duration | undefined): string | undefined => (d ? formatMs(durationMs(d)) : undefined);

/**
 * A scheduled job as an entry of `jobs.scheduled` in the configuration file: the keys, enum names
 * and durations (`10m`) the file takes, in the README's order, as a one-entry YAML list that can be
 * pasted back under `jobs.scheduled`. Output-only fields (source, next and last run) are left out.
 */
export function scheduledJobYaml(job: ScheduledJob): string {
  const timeout = text(job.timeout);
  const backoff = text(job.retry?.backoff);
  const entry = {
    name: job.name,
    schedule: job.schedule,
    time_zone: job.timeZone || 'UTC',
    kind: job.kind,
    params: job.params ?? {},
    active: !job.paused,
    ...(timeout === undefined ? {} : { timeout }),
    retry: { attempts: job.retry?.attempts || 1, ...(backoff === undefined ? {} : { backoff }) },
    concurrency: job.concurrency === Concurrency.ALLOW ? 'allow' : 'forbid',
    max_running: job.maxRunning || 4,
    misfire: job.misfire === MisfirePolicy.RUN_ONCE ? 'run-once' : 'skip',
    scope: job.scope === JobScope.CLUSTER ? 'cluster' : 'pod',
  };
  return stringify([entry]);
}
