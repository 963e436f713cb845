import { toJson } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { Command } from 'commander';
import { parseDuration } from '../config/units.js';
import { Concurrency, JobSchema, JobScope, JobService, JobSource, JobStatus, JobTrigger, MisfirePolicy, ScheduledJobSchema, type Job, type ScheduledJob } from '../gen/heimdall/v1/jobs_pb.js';
import { ago, clientCommand, iso, jsonObject, out, positive, table, tsOf, withClient } from './common.js';
import { scheduledJobYaml } from './job-yaml.js';

const STATUS_NAMES: Record<JobStatus, string> = { [JobStatus.UNSPECIFIED]: '', [JobStatus.PENDING]: 'pending', [JobStatus.RUNNING]: 'running', [JobStatus.SUCCEEDED]: 'succeeded', [JobStatus.FAILED]: 'failed', [JobStatus.CANCELLED]: 'cancelled' };
const TRIGGER_NAMES: Record<JobTrigger, string> = { [JobTrigger.UNSPECIFIED]: '', [JobTrigger.SCHEDULE]: 'schedule', [JobTrigger.MANUAL]: 'manual', [JobTrigger.SUBMIT]: 'submit', [JobTrigger.MISFIRE]: 'misfire', [JobTrigger.RETRY]: 'retry' };

/** A duration option as a protobuf Duration. */
function durationOf(text: string, option: string): { seconds: bigint; nanos: number } {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`${option}: expected a duration such as 30s, 10m or 1h, got ${JSON.stringify(text)}`);
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

/** A `--status` name as a JobStatus; throws naming the accepted names. */
function statusOf(name: string): JobStatus {
  const s = Object.entries(STATUS_NAMES).find(([, n]) => n === name && n !== '');
  if (!s) throw new Error(`--status: expected one of ${Object.values(STATUS_NAMES).filter(Boolean).join(', ')}, got ${JSON.stringify(name)}`);
  return Number(s[0]);
}

const took = (j: Job): string => (j.startedAt && j.endedAt ? `${((timestampDate(j.endedAt).getTime() - timestampDate(j.startedAt).getTime()) / 1000).toFixed(1)}s` : '');
const line = (j: Job): string => `${STATUS_NAMES[j.status]} ${j.progress}%${j.attempt > 1 ? ` (attempt ${j.attempt})` : ''}${j.error ? `: ${j.error}` : j.message ? `: ${j.message}` : ''}`;

/** Scheduled jobs as a table, or one JSON object per line. */
function printJobs(jobs: ScheduledJob[], json: boolean | undefined): void {
  if (json) return jobs.forEach((j) => out(JSON.stringify(toJson(ScheduledJobSchema, j))));
  table(
    ['NAME', 'SCHEDULE', 'TIME ZONE', 'KIND', 'SCOPE', 'SOURCE', 'STATE', 'NEXT RUN', 'LAST RUN'],
    jobs.map((j) => [j.name, j.schedule, j.timeZone, j.kind, j.scope === JobScope.CLUSTER ? 'cluster' : 'pod', j.source === JobSource.CONFIG ? 'config' : 'api', j.paused ? 'paused' : 'active', iso(j.nextRunTime), j.lastRun ? `${STATUS_NAMES[j.lastRun.status]} ${iso(j.lastRun.createdAt)}` : '']),
  );
}

/** Runs as a table, or one JSON object per line. */
function printRuns(runs: Job[], json: boolean | undefined): void {
  if (json) return runs.forEach((j) => out(JSON.stringify(toJson(JobSchema, j))));
  table(
    ['ID', 'JOB', 'KIND', 'TRIGGER', 'STATUS', 'ATTEMPT', 'PROGRESS', 'CREATED', 'TOOK', 'MESSAGE'],
    runs.map((j) => [j.id, j.jobName || '-', j.kind, TRIGGER_NAMES[j.trigger], STATUS_NAMES[j.status], String(j.attempt), `${j.progress}%`, iso(j.createdAt), took(j), (j.error || j.message).slice(0, 100)]),
  );
}

/** Follows a run until it ends, a line per change; exit code 1 unless it succeeded. */
async function follow(c: Parameters<Parameters<typeof withClient>[1]>[0], id: string, json: boolean | undefined): Promise<void> {
  let last: Job | undefined;
  await c.serverStream(JobService.method.watchJob, { id }, (m) => {
    if (!m.job) return;
    last = m.job;
    out(json ? JSON.stringify(toJson(JobSchema, m.job)) : `${new Date().toISOString()}  ${line(m.job)}`);
  });
  if (last?.status !== JobStatus.SUCCEEDED) process.exitCode = 1;
}

/** `heimdall jobs create`: the options as a ScheduledJob; throws naming the option at fault. */
function addCreateCommand(jobs: Command): void {
  clientCommand(jobs, 'create', 'create a scheduled job (stored by the agent)')
    .argument('<name>')
    .requiredOption('--schedule <cron>', 'cron expression, 5 fields or 6 with seconds first (croner syntax)')
    .requiredOption('--kind <kind>', 'system-check, http-check, retention or export')
    .option('--params <json>', 'the kind\'s parameters, a JSON object', '{}')
    .option('--tz <zone>', 'IANA time zone of the schedule', 'UTC')
    .option('--timeout <duration>', 'a run taking longer fails', '10m')
    .option('--attempts <n>', 'attempts per run, the first included', '1')
    .option('--backoff <duration>', 'wait before a retry, doubled each time', '1s')
    .option('--allow-overlap', 'let a tick start while the previous run goes on')
    .option('--misfire <policy>', 'skip, or run-once: one run at start for ticks missed while the agent was down', 'skip')
    .option('--scope <scope>', 'pod (every replica) or cluster (one replica per tick, through Redis)', 'pod')
    .option('--paused', 'create it paused')
    .action((name: string, o: Record<string, string | boolean | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        if (o.misfire !== 'skip' && o.misfire !== 'run-once') throw new Error(`--misfire: expected skip or run-once, got ${JSON.stringify(o.misfire)}`);
        if (o.scope !== 'pod' && o.scope !== 'cluster') throw new Error(`--scope: expected pod or cluster, got ${JSON.stringify(o.scope)}`);
        const { job } = await c.unary(JobService.method.createScheduledJob, {
          job: {
            name,
            schedule: String(o.schedule),
            timeZone: String(o.tz),
            kind: String(o.kind),
            params: jsonObject(String(o.params), '--params'),
            paused: Boolean(o.paused),
            timeout: durationOf(String(o.timeout), '--timeout'),
            retry: { attempts: positive(String(o.attempts), '--attempts'), backoff: durationOf(String(o.backoff), '--backoff') },
            concurrency: o.allowOverlap ? Concurrency.ALLOW : Concurrency.FORBID,
            misfire: o.misfire === 'run-once' ? MisfirePolicy.RUN_ONCE : MisfirePolicy.SKIP,
            scope: o.scope === 'cluster' ? JobScope.CLUSTER : JobScope.POD,
          },
        });
        if (job) printJobs([job], g.json);
      }),
    );
}

/** `heimdall jobs runs [name]`: pages through ListRuns up to `--limit`, newest first. */
function addRunsCommand(jobs: Command): void {
  clientCommand(jobs, 'runs', 'list runs, newest first (every job\'s, or one job\'s)')
    .argument('[name]')
    .option('--status <status>', 'pending, running, succeeded, failed or cancelled')
    .option('--since <duration>', 'how far back', '24h')
    .option('--limit <n>', 'at most this many runs', '50')
    .action((name: string | undefined, o: Record<string, string | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const limit = positive(o.limit ?? '50', '--limit');
        const runs: Job[] = [];
        let pageToken = '';
        do {
          const res = await c.unary(JobService.method.listRuns, { jobName: name ?? '', status: o.status ? statusOf(o.status) : JobStatus.UNSPECIFIED, startTime: tsOf(ago(o.since ?? '24h', '--since')), pageSize: Math.min(1000, limit - runs.length), pageToken });
          runs.push(...res.runs);
          pageToken = res.nextPageToken;
        } while (pageToken && runs.length < limit);
        printRuns(runs, g.json);
      }),
    );
}

/** `heimdall jobs pause|resume|delete|trigger <name>`: the calls on one scheduled job by name. */
function addJobVerbs(jobs: Command): void {
  for (const [verb, paused, what] of [
    ['pause', true, 'stop a job\'s ticks until it is resumed'],
    ['resume', false, 'resume a paused job'],
  ] as const) {
    clientCommand(jobs, verb, what)
      .argument('<name>')
      .action((name: string, _o: unknown, cmd: Command) =>
        withClient(cmd, async (c, g) => {
          const { job } = paused ? await c.unary(JobService.method.pauseScheduledJob, { name }) : await c.unary(JobService.method.resumeScheduledJob, { name });
          if (job) printJobs([job], g.json);
        }),
      );
  }
  clientCommand(jobs, 'delete', 'delete a job created through the API (its history stays)')
    .argument('<name>')
    .action((name: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (c) => {
        await c.unary(JobService.method.deleteScheduledJob, { name });
        out(`deleted ${name}`);
      }),
    );
  clientCommand(jobs, 'trigger', 'run a scheduled job now')
    .argument('<name>')
    .option('--watch', 'follow the run until it ends')
    .action((name: string, o: { watch?: boolean }, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const { job } = await c.unary(JobService.method.triggerScheduledJob, { name });
        if (!job) return;
        if (o.watch) await follow(c, job.id, g.json);
        else out(g.json ? JSON.stringify(toJson(JobSchema, job)) : job.id);
      }),
    );
}

/** Adds `heimdall jobs list|get|create|pause|resume|delete|trigger|runs`: scheduled jobs. */
function addScheduledJobCommands(program: Command): void {
  const jobs = program.command('jobs').description('scheduled jobs (needs a token with the admin scope)');
  clientCommand(jobs, 'list', 'list scheduled jobs').action((_o: unknown, cmd: Command) => withClient(cmd, async (c, g) => printJobs((await c.unary(JobService.method.listScheduledJobs, {})).jobs, g.json)));
  clientCommand(jobs, 'get', 'show a scheduled job as an entry of jobs.scheduled in the configuration file (--json: the API\'s message)')
    .argument('<name>')
    .action((name: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const { job } = await c.unary(JobService.method.getScheduledJob, { name });
        if (!job) return;
        if (g.json) return out(JSON.stringify(toJson(ScheduledJobSchema, job)));
        const lastRun = job.lastRun ? `${STATUS_NAMES[job.lastRun.status]} ${iso(job.lastRun.createdAt)}` : 'none';
        out(`# from ${job.source === JobSource.CONFIG ? 'the configuration file' : 'the API'}; ${job.paused ? 'paused' : `next run ${iso(job.nextRunTime)}`}; last run ${lastRun}`);
        out('# as an entry of jobs.scheduled in the configuration file:');
        process.stdout.write(scheduledJobYaml(job));
      }),
    );
  addCreateCommand(jobs);
  addJobVerbs(jobs);
  addRunsCommand(jobs);
}

/** Adds `heimdall job submit|watch|cancel|get`: on-demand jobs and runs by id. */
function addOnDemandJobCommands(program: Command): void {
  const job = program.command('job').description('on-demand jobs (needs a token with the admin scope)');
  clientCommand(job, 'submit', 'queue a job; prints its id')
    .argument('<kind>', 'system-check, http-check, retention or export')
    .option('--params <json>', 'the kind\'s parameters, a JSON object', '{}')
    .option('--timeout <duration>', 'the job fails past this', '10m')
    .option('--attempts <n>', 'attempts, the first included', '1')
    .option('--watch', 'follow the job until it ends')
    .action((kind: string, o: Record<string, string | boolean | undefined>, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const { job: j } = await c.unary(JobService.method.submitJob, { kind, params: jsonObject(String(o.params), '--params'), timeout: durationOf(String(o.timeout), '--timeout'), retry: { attempts: positive(String(o.attempts), '--attempts') } });
        if (!j) return;
        if (o.watch) await follow(c, j.id, g.json);
        else out(g.json ? JSON.stringify(toJson(JobSchema, j)) : j.id);
      }),
    );
  clientCommand(job, 'watch', 'follow a job\'s status and progress until it ends (exit 1 unless it succeeded)')
    .argument('<id>')
    .action((id: string, _o: unknown, cmd: Command) => withClient(cmd, (c, g) => follow(c, id, g.json)));
  clientCommand(job, 'cancel', 'cancel a pending or running job')
    .argument('<id>')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const { job: j } = await c.unary(JobService.method.cancelJob, { id });
        if (j) out(g.json ? JSON.stringify(toJson(JobSchema, j)) : `${j.id} ${line(j)}`);
      }),
    );
  clientCommand(job, 'get', 'show a job or run')
    .argument('<id>')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (c) => {
        const { job: j } = await c.unary(JobService.method.getJob, { id });
        if (j) out(JSON.stringify(toJson(JobSchema, j), null, 2));
      }),
    );
}

/** Adds `heimdall jobs list|get|create|pause|resume|delete|trigger|runs` and `heimdall job submit|watch|cancel|get`. */
export function addJobCommands(program: Command): void {
  addScheduledJobCommands(program);
  addOnDemandJobCommands(program);
}
