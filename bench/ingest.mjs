// Ingest benchmark: OTLP/gRPC traces, 100-span requests with 10 attributes each, sent by a load
// process (core 1) to one agent with embedded storage (core 0, chdb threads included). Reports
// spans/s, agent CPU-seconds per 100k spans (all threads, and the embedded engine's threads apart),
// spans/s per core of Heimdall's own CPU, p50/p99 export latency, peak RSS, spans stored, and the
// ratio to a decode-only ceiling measured on the same core in the same run, beside the engine's own
// insert cost (storage-floor.mjs); then the same load with ack: queued, and with the server
// transport (ClickHouse HTTP endpoint over chdb on core 1).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageSettings, serverStorageAllocator } from './footprint.mjs';
import { f, rssMiB, startPinned, threadCpuSeconds } from './lib.mjs';
import { traceRequestBytes } from './otlp-body.mjs';

const ROOT = join(import.meta.dirname, '..');
/** BENCH_DIST: another build's dist directory, to compare two builds. */
const MAIN = join(process.env.BENCH_DIST ?? join(ROOT, 'dist'), 'bundle', 'main.js');
const DURATION = Number(process.env.BENCH_DURATION ?? 30_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const SPANS = 100;
/** Which runs: any of stored, queued, server (comma-separated); all by default. */
const RUNS = new Set((process.env.BENCH_RUNS ?? 'stored,queued,server').split(','));
/** A directory for V8 CPU profiles of the agent (warm-up and run), summarized per phase by bench/profile-summary.mjs. */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-ingest-'));
const bodyFile = join(work, 'request.bin');
writeFileSync(bodyFile, traceRequestBytes(SPANS));

const pinned = (script, ...args) => JSON.parse(execFileSync('taskset', ['-c', '0', process.execPath, join(import.meta.dirname, script), ...args], { encoding: 'utf8' }));
const ceiling = pinned('ceiling.mjs', bodyFile, '3000', String(SPANS));
const floor = pinned('storage-floor.mjs', '10000', '200000');

async function metric(admin, name, labels = '[^}]*') {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  return Number(new RegExp(`^${name}(?:\\{${labels}\\})? (\\S+)`, 'm').exec(text)?.[1] ?? 0);
}

/** The main isolate's garbage collections so far, by kind (prom-client's gc metrics): { kind: { count, seconds } }. */
async function gcByKind(admin) {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const out = {};
  for (const m of text.matchAll(/^heimdall_nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} (\S+)$/gm)) {
    out[m[2]] ??= { count: 0, seconds: 0 };
    out[m[2]][m[1] === 'sum' ? 'seconds' : 'count'] = Number(m[3]);
  }
  return out;
}

/** The otel_traces parts an embedded data directory holds (after the agent exited): active parts, rows, merge levels, insert blocks. */
function embeddedParts(dataDir) {
  const sql = `SELECT count() AS parts, sum(rows) AS rows, max(level) AS maxLevel, sum(max_block_number - min_block_number + 1) AS blocks FROM system.parts WHERE active AND table = 'otel_traces'`;
  return JSON.parse(execFileSync(process.execPath, [join(import.meta.dirname, 'parts.mjs'), dataDir, sql], { encoding: 'utf8' }).trim());
}

function load(grpcPort, durationMs) {
  return new Promise((resolve, reject) => {
    const p = spawn('taskset', ['-c', '1', process.execPath, join(import.meta.dirname, 'load-grpc.mjs'), `127.0.0.1:${grpcPort}`, bodyFile, String(durationMs), String(CONCURRENCY)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
}

/** The image's Node flags and malloc settings (BENCH_IMAGE_SETTINGS=0: none), as production runs the agent. */
const IMAGE = imageSettings();

/** The agent's environment: the image's, and on server storage the allocator the manifests preload (jemalloc), unless BENCH_IMAGE_SETTINGS=0. */
const agentEnv = (storageUrl) => ({ ...IMAGE.env, ...(storageUrl && process.env.BENCH_IMAGE_SETTINGS !== '0' ? serverStorageAllocator() : {}) });

async function phase(name, extraConfig, storageUrl) {
  const dir = mkdtempSync(join(work, 'agent-'));
  const config = join(dir, 'heimdall.yaml');
  writeFileSync(
    config,
    [
      'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
      storageUrl ? `storage: { clickhouse: { url: "${storageUrl}" } }` : `storage: { embedded: { path: "${join(dir, 'data')}" } }`,
      `ingest: { queue: { path: "${join(dir, 'queue')}" }${extraConfig} }`,
      'shutdown: { drain: 0s }',
    ].join('\n'),
  );
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const agent = startPinned(0, [...profile, ...IMAGE.nodeArgs, MAIN, 'run', '--config', config], (l) => l.msg === 'Heimdall started', agentEnv(storageUrl));
  await agent.found;
  const grpc = agent.lines.find((l) => l.component === 'grpc' && l.port).port;
  const admin = agent.lines.find((l) => l.component === 'admin' && l.port).port;
  await load(grpc, 3_000); // warm-up
  const sent0 = await metric(admin, 'heimdall_exporter_sent_spans_total');
  const inserts0 = await metric(admin, 'heimdall_batch_rows_count', 'table="otel_traces"');
  const gc0 = await gcByKind(admin);
  const cpu0 = threadCpuSeconds(agent.child.pid);
  let peak = 0;
  const samples = [];
  const sampler = setInterval(() => {
    const rss = rssMiB(agent.child.pid).rss;
    samples.push(rss);
    peak = Math.max(peak, rss);
  }, 500);
  const r = await load(grpc, DURATION);
  clearInterval(sampler);
  const cpu1 = threadCpuSeconds(agent.child.pid);
  const engine = cpu1.engine - cpu0.engine;
  const own = cpu1.js + cpu1.node - cpu0.js - cpu0.node;
  const cpu = own + engine;
  // Let queued data drain before counting what was stored.
  for (let i = 0; i < 100 && (await metric(admin, 'heimdall_exporter_queue_size')) > 0; i++) await new Promise((res) => setTimeout(res, 200));
  const stored = (await metric(admin, 'heimdall_exporter_sent_spans_total')) - sent0;
  const inserts = (await metric(admin, 'heimdall_batch_rows_count', 'table="otel_traces"')) - inserts0;
  const gc1 = await gcByKind(admin);
  const gc = Object.entries(gc1).map(([kind, g]) => ({ kind, count: g.count - (gc0[kind]?.count ?? 0), ms: (g.seconds - (gc0[kind]?.seconds ?? 0)) * 1000 })).filter((g) => g.count > 0);
  const merges = cpu1.byName.MergeMutate - (cpu0.byName.MergeMutate ?? 0) || 0;
  const hwm = rssMiB(agent.child.pid).peak;
  agent.child.kill('SIGTERM');
  await new Promise((res) => agent.child.once('exit', res));
  const parts = storageUrl ? undefined : embeddedParts(join(dir, 'data'));
  const spans = r.ok * SPANS;
  // RSS over the run: the mean of the first and of the last minute (or tenth), and the range of the second half.
  const span = Math.max(1, Math.min(120, Math.floor(samples.length / 10)));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const half = samples.slice(Math.floor(samples.length / 2));
  const rssTimeline = `${f(mean(samples.slice(0, span)), 0)} -> ${f(mean(samples.slice(-span)), 0)} MiB (2nd half ${f(Math.min(...half), 0)}-${f(Math.max(...half), 0)})`;
  const mainThread = cpu1.js - cpu0.js;
  const threads = Object.entries(cpu1.byName).map(([n, s]) => [n, s - (cpu0.byName[n] ?? 0)]).filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
  return { name, threads, gc, server: Boolean(storageUrl), mainThreadShare: mainThread / Math.max(own, 1e-9), rssTimeline, spansPerSec: spans / r.wall, cpuPer100k: (cpu / spans) * 1e5, enginePer100k: (engine / spans) * 1e5, perOwnCore: spans / own, cpuUtil: cpu / r.wall, p50: r.p50, p99: r.p99, peakRss: Math.max(peak, hwm), failed: r.failed, statuses: r.statuses, acked: spans, stored, inserts, mergeCpuPer100k: (merges / spans) * 1e5, parts };
}

const results = [];
if (RUNS.has('stored')) results.push(await phase('embedded, ack: stored', ''));
if (RUNS.has('queued')) results.push(await phase('embedded, ack: queued', ', ack: queued'));
if (RUNS.has('server')) {
  const chDir = mkdtempSync(join(work, 'ch-'));
  const ch = startPinned(1, [join(import.meta.dirname, 'ch-endpoint.mjs'), chDir], (l) => typeof l.port === 'number');
  const { port } = await ch.found;
  results.push(await phase('server transport (HTTP endpoint over chdb, core 1), ack: stored', '', `http://127.0.0.1:${port}`));
  ch.child.kill('SIGTERM');
  await new Promise((res) => ch.child.once('exit', res));
}
rmSync(work, { recursive: true, force: true });

const lines = [
  `Same-run ceilings on core 0: decode only (@bufbuild fromBinary) ${f(ceiling.decode / 1000, 0)}k spans/s; generic path (decode, rows, redaction, encode) ${f(ceiling.generic / 1000, 0)}k; hot path (wire to RowBinary, redaction) ${f(ceiling.hot / 1000, 0)}k.`,
  `Embedded engine alone (chdb inserting those rows in RowBinary, 10k-row batches, core 0): ${f(floor.rowsPerSec / 1000, 1)}k rows/s, ${f(floor.cpuMicrosPerRow, 1)} CPU-µs per row (${f(floor.cpuMicrosPerRowMerged, 1)} with the merges it started).`,
  '',
  '| run | spans/s | ratio to decode-only | agent CPU-s per 100k spans (of which ClickHouse engine) | spans/s per core of Heimdall\'s own CPU | agent CPU used | export p50 / p99 | peak RSS | RSS first -> last minute | failed requests | spans acknowledged / stored |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.name} | ${f(r.spansPerSec, 0)} | ${f(r.spansPerSec / ceiling.decode, 2)} | ${f(r.cpuPer100k, 2)} (${f(r.enginePer100k, 2)}) | ${f(r.perOwnCore, 0)} | ${f(r.cpuUtil * 100, 0)}% | ${f(r.p50, 1)} / ${f(r.p99, 1)} ms | ${f(r.peakRss, 0)} MiB | ${r.rssTimeline} | ${r.failed}${r.failed ? ` (${Object.entries(r.statuses).filter(([c]) => c !== '0').map(([c, n]) => `${n}× ${c === '14' ? 'UNAVAILABLE' : `status ${c}`}`).join(', ')})` : ''} | ${r.acked} / ${r.stored} |`,
  ),
  '',
  ...results
    .filter((r) => r.server)
    .map(
      (r) =>
        `Server transport: ${f(r.perOwnCore / 1000, 1)}k spans/s per core of the agent's own CPU (${f(r.mainThreadShare * 100, 0)}% of it on the main thread), target >= 100k (2x the Collector's ~50k): ${r.perOwnCore >= 100_000 ? 'met' : 'not met'}; same-run ceilings on one core: decode only ${f(ceiling.decode / 1000, 0)}k, hot path ${f(ceiling.hot / 1000, 0)}k spans/s. Other threads' CPU-s per 100k spans: ${r.threads.map(([n, s]) => `${n} ${f((s / r.acked) * 1e5, 2)}`).join(', ')}.`,
    ),
  ...results.map((r) => `${r.name}: main isolate GC pauses over the run: ${r.gc.map((g) => `${g.kind} ${g.count} (${f(g.ms, 0)} ms)`).join(', ')}.`),
  ...results.filter((r) => r.parts).map((r) => `${r.name}: ${r.inserts} otel_traces inserts counted in the run${r.inserts > 0 ? ` (${f(r.stored / r.inserts, 0)} rows each)` : ''}, merge threads ${f(r.mergeCpuPer100k, 2)} CPU-s per 100k spans; at exit ${r.parts.parts} active parts, ${r.parts.rows} rows from ${r.parts.blocks} insert blocks, deepest merge level ${r.parts.maxLevel}.`),
  ...results
    .filter((r) => r.parts)
    .map((r) => `${r.name} / engine alone: ${f(r.spansPerSec / floor.rowsPerSec, 2)} in spans/s (target >= 0.5); in CPU per span (the core is shared): ${f(floor.cpuMicrosPerRow / (r.cpuPer100k * 10), 2)} (${f(floor.cpuMicrosPerRowMerged / (r.cpuPer100k * 10), 2)} against the engine with its merges).`),
  '',
  `Load: ${CONCURRENCY} requests in flight over 4 HTTP/2 connections, ${DURATION / 1000} s per run after a 3 s warm-up; node ${process.version}. Agent started as the image starts it: ${JSON.stringify(IMAGE)}; on server storage with ${JSON.stringify(agentEnv('server'))}.`,
];
process.stdout.write(`\n${lines.join('\n')}\n`);
