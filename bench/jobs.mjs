// Jobs benchmark. An agent with embedded storage (core 0) over a data directory pre-filled with
// BENCH_ROWS events (2 million by default) spread over the last 24 h.
// 1. Export: an `export` job of every event (JSON lines, then CSV) through SubmitJob + WatchJob:
//    rows/s, agent CPU-s per million rows, peak RSS, progress updates seen. Baseline in the same run:
//    the floor, the embedded engine alone writing the same rows and columns as JSON lines to a file
//    (SELECT ... INTO OUTFILE, a separate process over the same data directory, after the agent stopped).
// 2. Scheduler: a job every second (http-check of the agent's own /livez); lag from each scheduled
//    tick to the run's start, p50 / p99 / max, with the agent idle and while an export runs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../dist/cli/client.js';
import { JobService, JobStatus } from '../dist/gen/heimdall/v1/jobs_pb.js';
import { cpuSeconds, f, percentile, rssMiB, startPinned } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const ROWS = Number(process.env.BENCH_ROWS ?? 2_000_000);
const TICKS = Number(process.env.BENCH_TICKS ?? 30);
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-jobs-'));
const data = join(work, 'data');
const exports = join(work, 'exports');

execFileSync('taskset', ['-c', '0', process.execPath, join(import.meta.dirname, 'events-fill.mjs'), data, String(ROWS)], { encoding: 'utf8' });

const config = join(work, 'heimdall.yaml');
writeFileSync(
  config,
  [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${data}" } }`,
    `jobs: { export_dir: "${exports}", system_check: { enabled: false } }`,
    'shutdown: { drain: 0s }',
  ].join('\n'),
);
const agent = startPinned(0, [join(ROOT, 'dist', 'bundle', 'main.js'), 'run', '--config', config], (l) => l.msg === 'Heimdall started', {});
await agent.found;
const port = (component) => agent.lines.find((l) => l.component === component && l.port).port;
const admin = port('admin');
const client = connect({ addr: `127.0.0.1:${port('grpc')}` });

/** Runs an export job to its end; returns rows/s, CPU per million rows and the progress updates seen. */
async function exportJob(format) {
  const c0 = cpuSeconds(agent.child.pid);
  const t0 = performance.now();
  const { job } = await client.unary(JobService.method.submitJob, { kind: 'export', params: { source: 'events', since: '25h', format, file: `all.${format}` }, timeout: { seconds: 3600n } });
  let updates = 0;
  let last;
  await client.serverStream(JobService.method.watchJob, { id: job.id }, (m) => {
    updates += 1;
    last = m.job;
  });
  const seconds = (performance.now() - t0) / 1000;
  if (last?.status !== JobStatus.SUCCEEDED) throw new Error(`export ended ${last?.status}: ${last?.error}`);
  const rows = Number(last.result.rows);
  return { format, rows, seconds, rowsPerSec: rows / seconds, cpuPerMillion: ((cpuSeconds(agent.child.pid) - c0) / rows) * 1e6, bytes: statSync(join(exports, `all.${format}`)).size, updates };
}

/** Lag from each scheduled tick to the run's start, over TICKS ticks of a one-second job. */
async function tickLag(name, during) {
  await client.unary(JobService.method.createScheduledJob, { job: { name, schedule: '* * * * * *', kind: 'http-check', params: { url: `http://127.0.0.1:${admin}/livez` } } });
  const busy = during ? during() : undefined;
  await new Promise((r) => setTimeout(r, (TICKS + 1.5) * 1000));
  await client.unary(JobService.method.deleteScheduledJob, { name });
  const busyResult = await busy;
  const { runs } = await client.unary(JobService.method.listRuns, { jobName: name, pageSize: 1000 });
  const lags = runs
    .filter((r) => r.startedAt && r.scheduledTime)
    .map((r) => Number(r.startedAt.seconds - r.scheduledTime.seconds) * 1000 + (r.startedAt.nanos - r.scheduledTime.nanos) / 1e6)
    .sort((a, b) => a - b);
  return { name, runs: lags.length, p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags[lags.length - 1], busy: busyResult };
}

const exportsRun = [await exportJob('jsonl'), await exportJob('csv')];
const idle = await tickLag('tick-idle');
const loaded = await tickLag('tick-busy', () => exportJob('jsonl'));
const memory = rssMiB(agent.child.pid);
client.close();
agent.child.kill('SIGTERM');
await new Promise((r) => agent.child.once('exit', r));

// Baseline: the embedded engine alone writes the same rows and columns as JSON lines to a file.
const FLOOR_SQL = `SELECT toString(toUnixTimestamp64Nano(Timestamp)) AS time_unix_nano, Id AS id, TenantId AS tenant_id, Source AS source, EventType AS event_type, Severity AS severity, Category AS category, Message AS message, CorrelationId AS correlation_id, TraceId AS trace_id, SpanId AS span_id, ActorId AS actor_id, Status AS status, DurationMs AS duration_ms, Payload AS payload FROM heimdall_events ORDER BY Timestamp, Id INTO OUTFILE '${join(work, 'floor.jsonl')}' FORMAT JSONEachRow`;
const floor = JSON.parse(
  execFileSync('taskset', ['-c', '0', process.execPath, '-e', `
    const { createEmbeddedTransport } = await import(${JSON.stringify(join(ROOT, 'dist', 'storage', 'embedded.js'))});
    const t = await createEmbeddedTransport({ path: ${JSON.stringify(data)} });
    const t0 = performance.now();
    await t.command(${JSON.stringify(FLOOR_SQL)});
    const seconds = (performance.now() - t0) / 1000;
    const [{ rows }] = await t.query('SELECT count() AS rows FROM heimdall_events');
    process.stdout.write(JSON.stringify({ rows: Number(rows), seconds }));
    await t.close();
  `], { encoding: 'utf8', maxBuffer: 1 << 20 }),
);
const floorRate = floor.rows / floor.seconds;

console.log(`\nJobs benchmark: ${ROWS.toLocaleString()} events, agent on core 0 (${new Date().toISOString()})\n`);
console.log('export job (SubmitJob + WatchJob, whole table, keyset chunks of 20000 rows)');
console.log('format  rows        seconds  rows/s     vs floor  CPU-s/1M rows  file MiB  progress updates');
for (const e of exportsRun) console.log(`${e.format.padEnd(6)}  ${String(e.rows).padEnd(10)}  ${f(e.seconds, 1).padStart(7)}  ${f(e.rowsPerSec, 0).padStart(9)}  ${e.format === 'jsonl' ? f(e.rowsPerSec / floorRate, 2).padStart(8) : '       -'}  ${f(e.cpuPerMillion, 2).padStart(13)}  ${f(e.bytes / 1048576, 1).padStart(8)}  ${e.updates}`);
console.log(`floor   ${String(floor.rows).padEnd(10)}  ${f(floor.seconds, 1).padStart(7)}  ${f(floorRate, 0).padStart(9)}      1.00  (the embedded engine alone: SELECT ... INTO OUTFILE, JSON lines)`);
console.log('\nscheduler: lag from a one-second job\'s scheduled tick to its run\'s start (ms)');
console.log('while                runs  p50    p99    max');
for (const l of [idle, loaded]) console.log(`${(l.busy ? 'an export runs' : 'idle').padEnd(19)}  ${String(l.runs).padEnd(4)}  ${f(l.p50, 1).padStart(5)}  ${f(l.p99, 1).padStart(5)}  ${f(l.max, 1).padStart(5)}`);
console.log(`\nagent RSS at the end ${f(memory.rss, 0)} MiB, peak ${f(memory.peak, 0)} MiB`);
console.log(JSON.stringify({ rows: ROWS, exports: exportsRun, floor, ticks: [idle, loaded], memory }));
rmSync(work, { recursive: true, force: true });
