import { CronPattern } from 'croner';
import { z } from '../config/zod.js';
import { boolean, duration, integer, MAX_TIMER_MS } from '../config/units.js';
import { KIND_PARAMS, KIND_NAMES } from './kinds/params.js';

/** Names of scheduled jobs: what Redis keys, metric labels and file names can carry. */
export const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Whether `zone` is an IANA time zone this runtime knows (UTC, the default, without initialising ICU's time zones). */
function knownTimeZone(zone: string): boolean {
  if (zone === 'UTC') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a cron expression is not one croner takes (5 or 6 fields), or undefined when it is. The
 * expression is quoted once, in front: croner's own reasons for a wrong field count quote it again.
 */
export function cronError(schedule: string): string | undefined {
  try {
    new CronPattern(schedule, undefined, { mode: '5-or-6-parts' });
    return undefined;
  } catch (err) {
    const fields = schedule.split(/\s+/).filter(Boolean).length;
    const reason = fields === 5 || fields === 6 ? (err as Error).message.replace(/^CronPattern: /, '') : `${fields} field${fields === 1 ? '' : 's'}; expected 5, or 6 with seconds first`;
    return `invalid cron expression ${JSON.stringify(schedule)}: ${reason}`;
  }
}

const retry = z.strictObject({
  /** Attempts in all, the first included. */
  attempts: integer({ min: 1, max: 100 }).default(1),
  /** Wait before the second attempt; doubled for each later one. */
  backoff: duration({ min: 0, max: MAX_TIMER_MS }).prefault('1s'),
});

const taskFields = {
  /** What the job does: one of the task kinds. */
  kind: z.string(),
  /** The kind's parameters. */
  params: z.record(z.string(), z.unknown()).default({}),
  /** A run taking longer fails. */
  timeout: duration({ min: 1, max: MAX_TIMER_MS }).prefault('10m'),
  retry: retry.prefault({}),
};

/** The kind must be known and its parameters valid for it (issues name the field under `params`). */
function checkTask(t: { kind: string; params: Record<string, unknown> }, ctx: z.RefinementCtx): void {
  const schema = KIND_PARAMS[t.kind as keyof typeof KIND_PARAMS] as z.ZodType | undefined;
  if (!schema) {
    ctx.addIssue({ code: 'custom', path: ['kind'], message: `unknown task kind ${JSON.stringify(t.kind)}; expected one of ${KIND_NAMES.join(', ')}` });
    return;
  }
  const parsed = schema.safeParse(t.params, { reportInput: true });
  if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: ['params', ...issue.path] });
}

/** A task as SubmitJob gives it: kind, parameters, timeout and retry policy. */
export const taskSchema = z.strictObject(taskFields).superRefine(checkTask);

/** A scheduled job as the config file and the API define it (durations in ms after parsing). */
export const jobSpecSchema = z
  .strictObject({
    name: z.string().regex(JOB_NAME, 'expected 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
    /** croner syntax: 5 fields, or 6 with seconds first. */
    schedule: z.string(),
    /** IANA time zone the schedule is read in. */
    time_zone: z.string().default('UTC'),
    active: boolean.default(true),
    concurrency: z.enum(['forbid', 'allow']).default('forbid'),
    /** With concurrency allow: runs of this job at once; a tick past it is skipped (forbid is one run). */
    max_running: integer({ min: 1, max: 1000 }).default(4),
    misfire: z.enum(['skip', 'run-once']).default('skip'),
    scope: z.enum(['pod', 'cluster']).default('pod'),
    ...taskFields,
  })
  .superRefine((j, ctx) => {
    const cron = cronError(j.schedule);
    if (cron) ctx.addIssue({ code: 'custom', path: ['schedule'], message: cron });
    if (!knownTimeZone(j.time_zone)) ctx.addIssue({ code: 'custom', path: ['time_zone'], message: `unknown time zone ${JSON.stringify(j.time_zone)}; expected an IANA name such as "UTC" or "Europe/Oslo"` });
    checkTask(j, ctx);
  });

/** A validated scheduled job. */
export type JobSpec = z.output<typeof jobSpecSchema>;
/** A validated task (kind, params, timeout, retry). */
export type TaskSpec = z.output<typeof taskSchema>;
/** A scheduled job as written (durations as text or ms). */
export type JobSpecInput = z.input<typeof jobSpecSchema>;

/** The scheduled jobs a `jobs` config section defines: the built-in system check (when enabled), then `scheduled`. */
export function configJobs(section: { system_check: { enabled: boolean; schedule: string; threshold: number }; scheduled: readonly JobSpec[] }): JobSpec[] {
  const builtIn = section.system_check.enabled
    ? [jobSpecSchema.parse({ name: SYSTEM_CHECK_JOB, schedule: section.system_check.schedule, kind: 'system-check', params: { threshold: section.system_check.threshold }, timeout: '20s' })]
    : [];
  return [...builtIn, ...section.scheduled];
}

/** The name of the built-in system check job. */
export const SYSTEM_CHECK_JOB = 'system-check';
