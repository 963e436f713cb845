/** Per-job series: labelled job_name, and gone from /metrics once their job is deleted or paused. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createJobSeries, jobLabel, ON_DEMAND_JOB_LABEL } from '../../../src/jobs/job-series.js';
import { jobSpecSchema } from '../../../src/jobs/spec.js';

describe('job series', () => {
  it('labels on-demand runs "(on-demand)", a value no scheduled job can be named', () => {
    expect(jobLabel('')).toBe('(on-demand)');
    expect(jobLabel('probe')).toBe('probe');
    expect(jobSpecSchema.safeParse({ name: ON_DEMAND_JOB_LABEL, schedule: '* * * * *', kind: 'system-check' }).success).toBe(false);
  });

  it('removes every series of the jobs retain refuses, from every metric; kept and on-demand series stay', async () => {
    const metrics = new Registry();
    const series = createJobSeries();
    const runs = new Counter({ name: 'runs_total', help: 'h', labelNames: ['job_name', 'status'] as const, registers: [metrics] });
    const up = new Gauge({ name: 'up', help: 'h', labelNames: ['job_name'] as const, registers: [metrics] });
    const took = new Histogram({ name: 'took_seconds', help: 'h', labelNames: ['job_name'] as const, buckets: [1], registers: [metrics] });
    for (const job of ['a', 'b', '']) {
      runs.inc(series.track(runs, job, { status: 'succeeded' }));
      runs.inc(series.track(runs, job, { status: 'failed' }));
      up.set(series.track(up, job, {}), 1);
      took.observe(series.track(took, job, {}), 0.5);
    }
    expect(await metrics.metrics()).toContain('runs_total{job_name="(on-demand)",status="failed"} 1');

    series.retain((name) => name === 'b');
    const text = await metrics.metrics();
    expect(text).not.toContain('job_name="a"');
    expect(text).toContain('runs_total{job_name="b",status="succeeded"} 1');
    expect(text).toContain('took_seconds_count{job_name="b"} 1');
    expect(text).toContain('up{job_name="(on-demand)"} 1');

    // Written again (the job resumed and ran), the series come back, and go again.
    up.set(series.track(up, 'a', {}), 0);
    expect(await metrics.metrics()).toContain('up{job_name="a"} 0');
    series.retain(() => false);
    const after = await metrics.metrics();
    expect(after).not.toMatch(/job_name="[ab]"/);
    expect(after).toContain('took_seconds_count{job_name="(on-demand)"} 1');
  });
});
