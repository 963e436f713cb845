import { create } from '@bufbuild/protobuf';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { scheduledJobYaml } from '../../../src/cli/job-yaml.js';
import { Concurrency, JobScope, JobSource, MisfirePolicy, ScheduledJobSchema } from '../../../src/gen/heimdall/v1/jobs_pb.js';
import { jobSpecSchema } from '../../../src/jobs/spec.js';

const seconds = (s: number) => ({ seconds: BigInt(s), nanos: 0 });

describe('scheduledJobYaml', () => {
  it('writes the keys, names and durations the configuration file takes, in the README order', () => {
    const job = create(ScheduledJobSchema, {
      name: 'nightly-retention',
      schedule: '0 3 * * *',
      timeZone: 'Europe/Oslo',
      kind: 'retention',
      params: { dry_run: false },
      timeout: seconds(600),
      retry: { attempts: 3, backoff: { seconds: 1n, nanos: 500_000_000 } },
      concurrency: Concurrency.ALLOW,
      maxRunning: 2,
      misfire: MisfirePolicy.RUN_ONCE,
      scope: JobScope.CLUSTER,
      source: JobSource.API,
      paused: true,
    });
    expect(scheduledJobYaml(job)).toBe(
      [
        '- name: nightly-retention',
        '  schedule: 0 3 * * *',
        '  time_zone: Europe/Oslo',
        '  kind: retention',
        '  params:',
        '    dry_run: false',
        '  active: false',
        '  timeout: 10m',
        '  retry:',
        '    attempts: 3',
        '    backoff: 1500ms',
        '  concurrency: allow',
        '  max_running: 2',
        '  misfire: run-once',
        '  scope: cluster',
        '',
      ].join('\n'),
    );
  });

  it('reads back through the job schema as the spec it came from (defaults filled in)', () => {
    const spec = jobSpecSchema.parse({ name: 'probe', schedule: '*/10 * * * * *', kind: 'http-check', params: { url: 'http://127.0.0.1:9/' } });
    const job = create(ScheduledJobSchema, {
      name: spec.name,
      schedule: spec.schedule,
      timeZone: spec.time_zone,
      kind: spec.kind,
      params: spec.params as Record<string, string>,
      timeout: seconds(spec.timeout / 1000),
      retry: { attempts: spec.retry.attempts, backoff: seconds(spec.retry.backoff / 1000) },
      concurrency: Concurrency.FORBID,
      maxRunning: spec.max_running,
      misfire: MisfirePolicy.SKIP,
      scope: JobScope.POD,
    });
    const [entry] = parse(scheduledJobYaml(job)) as unknown[];
    expect(jobSpecSchema.parse(entry)).toEqual(spec);
  });
});
