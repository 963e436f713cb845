import type { LabelValues } from 'prom-client';

/**
 * The `job_name` value of on-demand runs. Job names start with a letter or digit, so no scheduled job
 * can take it (`on-demand` could be a job's name); the run's kind is a label of its own where it counts.
 */
export const ON_DEMAND_JOB_LABEL = '(on-demand)';

/** The `job_name` label of a run's series: the scheduled job's name, or ON_DEMAND_JOB_LABEL. */
export const jobLabel = (jobName: string): string => jobName || ON_DEMAND_JOB_LABEL;

/** A prom-client metric whose series can be removed by their full label set. */
interface Removable {
  remove(labels: LabelValues<string>): void;
}

/** The per-job series on /metrics (`job_name` label), remembered so that a job's series leave with it. */
export interface JobSeries {
  /** The labels of `metric`'s series for `jobName` (`job_name` set), remembered under the job; returns them to pass to inc/set/observe. */
  track<L extends Record<string, string>>(metric: Removable, jobName: string, labels: L): L & { job_name: string };
  /** Removes the series of every scheduled job `keep` refuses (deleted or paused); on-demand series stay. */
  retain(keep: (jobName: string) => boolean): void;
}

/** Creates it; owns the label sets written per job (bounded by the jobs times their label values). */
export function createJobSeries(): JobSeries {
  const byJob = new Map<string, Map<Removable, Map<string, LabelValues<string>>>>();
  return {
    track(metric, jobName, labels) {
      const full = { job_name: jobLabel(jobName), ...labels };
      let metrics = byJob.get(jobName);
      if (!metrics) byJob.set(jobName, (metrics = new Map<Removable, Map<string, LabelValues<string>>>()));
      let sets = metrics.get(metric);
      if (!sets) metrics.set(metric, (sets = new Map<string, LabelValues<string>>()));
      sets.set(JSON.stringify(full), full);
      return full;
    },
    retain(keep) {
      for (const [jobName, metrics] of byJob) {
        if (jobName === '' || keep(jobName)) continue;
        for (const [metric, sets] of metrics) for (const labels of sets.values()) metric.remove(labels);
        byJob.delete(jobName);
      }
    },
  };
}
