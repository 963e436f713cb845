// Foundation benchmark: cold start to ready, /readyz and grpc.health.v1 Check throughput, CPU per
// request, latency percentiles and memory, each against a no-op baseline measured in the same run.
// Agent and baselines run pinned to core 0, h2load (C, nghttp2-client) to core 1.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, f, h2load, percentile, rssMiB, sequentialGets, startPinned } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist', 'main.js');
const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const HTTP_REQUESTS = Number(process.env.BENCH_HTTP_REQUESTS ?? 40_000);
const GRPC_REQUESTS = Number(process.env.BENCH_GRPC_REQUESTS ?? 60_000);
const SEQUENTIAL = 2_000;

function agentConfig(dir) {
  const file = join(dir, 'heimdall.yaml');
  writeFileSync(
    file,
    `server:\n  grpc: { address: "127.0.0.1:0" }\n  otlp_http: { address: "127.0.0.1:0" }\n  admin: { address: "127.0.0.1:0" }\nstorage:\n  embedded: { path: "${join(dir, 'data')}" }\nshutdown: { drain: 0s }\n`,
  );
  return file;
}

async function waitFor200(url) {
  for (;;) {
    const res = await fetch(url).catch(() => undefined);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function stop(child) {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Starts the agent; resolves with its ports once /readyz is 200, and the ms that took. */
async function startAgent() {
  const dir = mkdtempSync(join(tmpdir(), 'heimdall-bench-'));
  const t0 = performance.now();
  const p = startPinned(0, [MAIN, 'run', '--config', agentConfig(dir)], (l) => l.msg === 'Heimdall started');
  await p.found;
  const admin = p.lines.find((l) => l.component === 'admin' && l.port).port;
  const grpc = p.lines.find((l) => l.component === 'grpc' && l.port).port;
  await waitFor200(`http://127.0.0.1:${admin}/readyz`);
  return { child: p.child, admin, grpc, ms: performance.now() - t0, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function startBaseline(script) {
  const t0 = performance.now();
  const p = startPinned(0, [join(import.meta.dirname, 'baselines', script)], (l) => typeof l.port === 'number');
  const { port } = await p.found;
  return { child: p.child, port, ms: performance.now() - t0 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// 1. Cold start to ready.
const agentStarts = [];
const baselineStarts = [];
let readyRss;
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  const b = await startBaseline('http-noop.mjs');
  await waitFor200(`http://127.0.0.1:${b.port}/`);
  baselineStarts.push(performance.now() - t0);
  await stop(b.child);
  const a = await startAgent();
  agentStarts.push(a.ms);
  readyRss = rssMiB(a.child.pid);
  await stop(a.child);
  a.cleanup();
}

// 2. Load: /readyz over HTTP/1.1 and Health/Check over gRPC, agent vs baselines.
async function measureHttp(port, pid) {
  const url = `http://127.0.0.1:${port}/readyz`;
  const cpu0 = cpuSeconds(pid);
  const r = h2load(1, ['--h1', '-n', String(HTTP_REQUESTS), '-c', '8', '-t', '1', url]);
  const cpu = cpuSeconds(pid) - cpu0;
  const lat = await sequentialGets(url, SEQUENTIAL);
  return { ...r, cpuUsPerReq: (cpu * 1e6) / r.succeeded, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}
async function measureGrpc(port, pid, bodyFile) {
  const cpu0 = cpuSeconds(pid);
  const r = h2load(1, ['-n', String(GRPC_REQUESTS), '-c', '4', '-m', '16', '-t', '1', '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}/grpc.health.v1.Health/Check`]);
  const cpu = cpuSeconds(pid) - cpu0;
  return { ...r, cpuUsPerReq: (cpu * 1e6) / r.succeeded };
}

const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-body-'));
const body = join(work, 'check.bin');
writeFileSync(body, Buffer.from([0, 0, 0, 0, 0])); // one gRPC frame: uncompressed, empty HealthCheckRequest

const agent = await startAgent();
const httpAgent = await measureHttp(agent.admin, agent.child.pid);
const grpcAgent = await measureGrpc(agent.grpc, agent.child.pid, body);
const loadedRss = rssMiB(agent.child.pid);
await stop(agent.child);
agent.cleanup();

const httpBase = await startBaseline('http-noop.mjs');
const httpBaseline = await measureHttp(httpBase.port, httpBase.child.pid);
await stop(httpBase.child);
const grpcBase = await startBaseline('grpc-noop.mjs');
const grpcBaseline = await measureGrpc(grpcBase.port, grpcBase.child.pid, body);
await stop(grpcBase.child);
rmSync(work, { recursive: true, force: true });

const rows = [
  ['cold start to /readyz 200 (median of ' + STARTS + ')', `${f(median(agentStarts), 0)} ms`, `${f(median(baselineStarts), 0)} ms (bare node:http start)`, `${f(median(agentStarts) / median(baselineStarts), 1)}x`],
  ['RSS when ready / peak during start', `${f(readyRss.rss, 0)} / ${f(readyRss.peak, 0)} MiB`, '', ''],
  ['GET /readyz throughput (h2load, 8 conns)', `${f(httpAgent.rps, 0)} req/s`, `${f(httpBaseline.rps, 0)} req/s`, `${f(httpAgent.rps / httpBaseline.rps, 2)}`],
  ['GET /readyz CPU per request', `${f(httpAgent.cpuUsPerReq, 1)} µs`, `${f(httpBaseline.cpuUsPerReq, 1)} µs`, `${f(httpAgent.cpuUsPerReq / httpBaseline.cpuUsPerReq, 2)}`],
  ['GET /readyz latency p50 / p99 (1 in flight)', `${f(httpAgent.p50, 3)} / ${f(httpAgent.p99, 3)} ms`, `${f(httpBaseline.p50, 3)} / ${f(httpBaseline.p99, 3)} ms`, ''],
  ['gRPC Health/Check throughput (h2load, 4x16 streams)', `${f(grpcAgent.rps, 0)} calls/s`, `${f(grpcBaseline.rps, 0)} calls/s`, `${f(grpcAgent.rps / grpcBaseline.rps, 2)}`],
  ['gRPC Health/Check CPU per call', `${f(grpcAgent.cpuUsPerReq, 1)} µs`, `${f(grpcBaseline.cpuUsPerReq, 1)} µs`, `${f(grpcAgent.cpuUsPerReq / grpcBaseline.cpuUsPerReq, 2)}`],
  ['RSS after the load runs', `${f(loadedRss.rss, 0)} MiB (peak ${f(loadedRss.peak, 0)})`, '', ''],
];
const table = ['| measure | agent | baseline (same run) | ratio |', '|---|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
process.stdout.write(`\n${table}\n\nsucceeded: http ${httpAgent.succeeded}/${HTTP_REQUESTS}, grpc ${grpcAgent.succeeded}/${GRPC_REQUESTS}; node ${process.version}\n`);
