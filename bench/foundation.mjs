// Foundation benchmark: cold start to ready (on an existing data directory), idle RSS and threads
// (embedded and server transport), RSS after a 60 s mixed load, /readyz and grpc.health.v1 Check
// throughput, CPU per request, latency percentiles and memory, each against a bare Node baseline
// measured in the same run and, for issue 16's footprint figures, the target it is held to.
// Agent and baselines run pinned to core 0, h2load (C, nghttp2-client) and the test-only ClickHouse
// endpoint of the server-transport runs to core 1.
// Idle RSS is sampled after BENCH_IDLE_MS (default 60 s) of idling: long enough for the agent's
// periodic work (system checks, maintenance) to have run once, and with it the engine code it runs,
// which the embedded agent's unmapping 5 s after start had dropped (at 10 s an embedded agent
// measured ~180 MiB, settling at ~200 over the next minute).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentConfig, bareNodeIdle, footprintRun, imageSettings, serverStorageAllocator, startAgent, startClickHouseEndpoint, stop, waitFor200 } from './footprint.mjs';
import { cpuSeconds, f, h2load, percentile, rssMiB, sequentialGets, startPinned } from './lib.mjs';

const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const HTTP_REQUESTS = Number(process.env.BENCH_HTTP_REQUESTS ?? 40_000);
const GRPC_REQUESTS = Number(process.env.BENCH_GRPC_REQUESTS ?? 60_000);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 60_000);
const LOAD_MS = Number(process.env.BENCH_LOAD_MS ?? 60_000);
const AFTER_MS = Number(process.env.BENCH_AFTER_MS ?? 60_000);
const LOAD_RATE = Number(process.env.BENCH_LOAD_RATE ?? 50);
const SEQUENTIAL = 2_000;
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-'));

async function startBaseline(script) {
  const t0 = performance.now();
  const p = startPinned(0, [join(import.meta.dirname, 'baselines', script)], (l) => typeof l.port === 'number');
  const { port } = await p.found;
  return { child: p.child, port, ms: performance.now() - t0 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// 1. Cold start to ready: the first start creates the data directory (schema migrations); the
// STARTS starts after it reuse it, as a restarted pod does, pinned to core 0 (a sidecar limited to one
// CPU) and, alternating, on both cores. Bare node:http starts alternate with them.
const startDir = mkdtempSync(join(work, 'starts-'));
const startConfig = agentConfig(startDir);
const first = await startAgent(startConfig);
await stop(first.child);
const agentStarts = [];
const twoCoreStarts = [];
const baselineStarts = [];
let readyRss;
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  const b = await startBaseline('http-noop.mjs');
  await waitFor200(`http://127.0.0.1:${b.port}/`);
  baselineStarts.push(performance.now() - t0);
  await stop(b.child);
  const a = await startAgent(startConfig);
  agentStarts.push(a.ms);
  readyRss = rssMiB(a.child.pid);
  await stop(a.child);
  const both = await startAgent(startConfig, {}, '0,1');
  twoCoreStarts.push(both.ms);
  await stop(both.child);
}

// 2. Idle footprint and RSS after a load, embedded and with the server transport, beside a bare Node
// process. The server transport runs with the allocator its manifests preload (jemalloc), and once
// more with glibc's malloc (the image's default, which the embedded agent keeps) for comparison.
const bare = await bareNodeIdle(IDLE_MS);
const loadOptions = { work, idleMs: IDLE_MS, loadMs: LOAD_MS, afterMs: AFTER_MS, rate: LOAD_RATE, queryEveryMs: 500 };
const embedded = await footprintRun(loadOptions);
const allocator = serverStorageAllocator();
const serverRun = async (env) => {
  const ch = await startClickHouseEndpoint(work);
  try {
    return await footprintRun({ ...loadOptions, storageUrl: ch.url, env });
  } finally {
    await ch.stop();
  }
};
const server = await serverRun(allocator);
const serverGlibc = await serverRun({});

const within = (r) => (r.backAfterS === undefined ? `not within ${AFTER_MS / 1000} s (${f(r.end, 0)} MiB at the end, ${f(r.end / r.idle.rss, 2)}x idle)` : `${r.backAfterS} s`);
const met = (ok) => (ok ? 'met' : 'NOT met');
const footprint = [
  [`idle RSS, server transport (jemalloc; ${f(serverGlibc.idle.rss, 0)} MiB with glibc malloc)`, `${f(server.idle.rss, 0)} MiB, ${server.idle.threads} threads`, `${f(bare.rss, 0)} MiB, ${bare.threads} threads`, `${f(server.idle.rss / bare.rss, 2)}x`, '<= 100 MiB', met(server.idle.rss <= 100)],
  ['idle RSS, embedded', `${f(embedded.idle.rss, 0)} MiB, ${embedded.idle.threads} threads`, `${f(bare.rss, 0)} MiB, ${bare.threads} threads`, `${f(embedded.idle.rss / bare.rss, 2)}x`, '<= 250 MiB', met(embedded.idle.rss <= 250)],
  [`cold start to /readyz 200, embedded, existing data directory (median of ${STARTS})`, `${f(median(agentStarts), 0)} ms (min ${f(Math.min(...agentStarts), 0)}, max ${f(Math.max(...agentStarts), 0)}; first start on an empty directory ${f(first.ms, 0)} ms)`, `${f(median(baselineStarts), 0)} ms (bare node:http start)`, `${f(median(agentStarts) / median(baselineStarts), 1)}x`, '<= 1000 ms', met(median(agentStarts) <= 1000)],
  [`the same on two cores (not pinned; median of ${STARTS})`, `${f(median(twoCoreStarts), 0)} ms (min ${f(Math.min(...twoCoreStarts), 0)}, max ${f(Math.max(...twoCoreStarts), 0)})`, '', `${f(median(twoCoreStarts) / median(baselineStarts), 1)}x`, '<= 1000 ms', met(median(twoCoreStarts) <= 1000)],
  ...[
    ['server transport (jemalloc)', server],
    ['server transport with glibc malloc (for comparison)', serverGlibc],
    ['embedded', embedded],
  ].map(([name, r]) => [
    `after ${LOAD_MS / 1000} s of load, ${name}: back within 20% of idle`,
    `${within(r)}; idle ${f(r.idle.rss, 0)}, peak ${f(r.peak, 0)}, at load end ${f(r.atLoadEnd, 0)} (${r.threadsLoaded} threads), after ${AFTER_MS / 1000} s ${f(r.end, 0)} MiB`,
    '',
    `${f(r.end / r.idle.rss, 2)}x idle at the end`,
    `<= 1.2x idle within 60 s`,
    met(r.backAfterS !== undefined && r.backAfterS <= 60),
  ]),
];
const loads = [
  ['server transport (jemalloc)', server],
  ['server transport (glibc)', serverGlibc],
  ['embedded', embedded],
].map(([name, r]) => `${name}: ${r.load.ok}/${r.load.sent} OTLP requests ok (${f((r.load.ok * 100) / (r.load.wallMs / 1000), 0)} spans/s), ${r.load.skipped} skipped at 64 in flight, ${r.load.queries} queries ok, ${r.load.queryFailures} failed`);
const footprintTable = ['| footprint (issue 16) | agent | bare Node (same run) | ratio | target | |', '|---|---|---|---|---|---|', ...footprint.map((r) => `| ${r.join(' | ')} |`)].join('\n');
process.stdout.write(`\n${footprintTable}\n\nIdle: ${IDLE_MS / 1000} s after /readyz 200, median of 5 one-second samples. Load: OTLP/gRPC ${LOAD_RATE} requests/s of 100 spans (open loop) and a query every 500 ms (SearchTraces, GetSummary, ListServices over Connect JSON). ${loads.join('; ')}. Agent started as the image starts it: node ${JSON.stringify(imageSettings())}; on server storage with the manifests' allocator: ${JSON.stringify(allocator)}.\n`);

// 3. Load (skipped with BENCH_THROUGHPUT=0): /readyz over HTTP/1.1 and Health/Check over gRPC, agent vs baselines.
if (process.env.BENCH_THROUGHPUT !== '0') {
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

  const body = join(work, 'check.bin');
  writeFileSync(body, Buffer.from([0, 0, 0, 0, 0])); // one gRPC frame: uncompressed, empty HealthCheckRequest

  const agent = await startAgent(agentConfig(mkdtempSync(join(work, 'load-'))));
  const httpAgent = await measureHttp(agent.admin, agent.child.pid);
  const grpcAgent = await measureGrpc(agent.grpc, agent.child.pid, body);
  const loadedRss = rssMiB(agent.child.pid);
  await stop(agent.child);

  const httpBase = await startBaseline('http-noop.mjs');
  const httpBaseline = await measureHttp(httpBase.port, httpBase.child.pid);
  await stop(httpBase.child);
  const grpcBase = await startBaseline('grpc-noop.mjs');
  const grpcBaseline = await measureGrpc(grpcBase.port, grpcBase.child.pid, body);
  await stop(grpcBase.child);

  const rows = [
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
}
rmSync(work, { recursive: true, force: true });
