// Footprint measurements for bench/foundation.mjs (issue 16): idle RSS and threads of the agent
// (embedded and server transport) and of a bare Node process, and RSS after a mixed load (paced OTLP
// ingest plus queries) against the idle figure.
import { existsSync, globSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, constants } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { traceRequestBytes } from './otlp-body.mjs';
import { rssMiB, startPinned } from './lib.mjs';

const MAIN = join(import.meta.dirname, '..', 'dist', 'bundle', 'main.js');

/**
 * The Node flags and environment the image runs the agent with (the Dockerfile's ENTRYPOINT flags
 * before dist/bundle/main.js, its `ENV MALLOC_*` settings and its compile cache), so the bench measures
 * what production runs; none with BENCH_IMAGE_SETTINGS=0.
 */
export function imageSettings() {
  if (process.env.BENCH_IMAGE_SETTINGS === '0') return { nodeArgs: [], env: {} };
  const dockerfile = readFileSync(join(import.meta.dirname, '..', 'Dockerfile'), 'utf8');
  const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '["node", "dist/bundle/main.js"]');
  const env = Object.fromEntries([...dockerfile.matchAll(/\b(MALLOC_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  // The image makes its compile cache at build; here the bench's first start makes it.
  if (/^ENV NODE_COMPILE_CACHE=/m.test(dockerfile)) env.NODE_COMPILE_CACHE = join(tmpdir(), 'heimdall-bench-compile-cache');
  return { nodeArgs: entry.slice(1, entry.indexOf('dist/bundle/main.js')), env };
}
const IMAGE = imageSettings();

/**
 * The allocator the Kubernetes manifests give an agent on server storage (deploy/kubernetes/base:
 * LD_PRELOAD jemalloc, MALLOC_CONF), with the library where this machine has it (Debian's
 * libjemalloc2); throws when it is missing.
 */
export function serverStorageAllocator() {
  const manifest = parseAllDocuments(readFileSync(join(import.meta.dirname, '..', 'deploy', 'kubernetes', 'base', 'deployment.yaml'), 'utf8')).map((d) => d.toJS());
  const sidecar = manifest.find((d) => d?.kind === 'Deployment').spec.template.spec.initContainers.find((c) => c.name === 'heimdall');
  const env = Object.fromEntries(sidecar.env.filter((e) => e.name === 'LD_PRELOAD' || e.name === 'MALLOC_CONF').map((e) => [e.name, e.value]));
  const lib = [env.LD_PRELOAD, ...globSync('/usr/lib/*-linux-gnu/libjemalloc.so.2')].find((p) => p && existsSync(p));
  if (!lib) throw new Error(`${env.LD_PRELOAD} (libjemalloc2) is not installed: apt-get install libjemalloc2`);
  return { ...env, LD_PRELOAD: lib };
}

/** Threads of a process now. */
export const threadCount = (pid) => readdirSync(`/proc/${pid}/task`).length;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Resolves once `url` answers 200. */
export async function waitFor200(url) {
  for (;;) {
    const res = await fetch(url).catch(() => undefined);
    if (res?.status === 200) return;
    await sleep(5);
  }
}

/** SIGTERM, then resolves on exit. */
export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Writes an agent configuration in `dir`: ports 0, embedded storage in `dir/data` unless `storageUrl` is given. */
export function agentConfig(dir, storageUrl) {
  const file = join(dir, 'heimdall.yaml');
  writeFileSync(
    file,
    [
      'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
      storageUrl ? `storage: { clickhouse: { url: "${storageUrl}" } }` : `storage: { embedded: { path: "${join(dir, 'data')}" } }`,
      `ingest: { queue: { path: "${join(dir, 'queue')}" } }`,
      `jobs: { export_dir: "${join(dir, 'exports')}" }`,
      'shutdown: { drain: 0s }',
    ].join('\n') + '\n',
  );
  return file;
}

/** Starts the agent on `config` pinned to `cores` (taskset list, default core 0; `env` added to its environment); resolves with its ports once /readyz is 200, and the ms that took. */
export async function startAgent(config, env = {}, cores = '0') {
  const t0 = performance.now();
  const p = startPinned(cores, [...IMAGE.nodeArgs, MAIN, 'run', '--config', config], (l) => l.msg === 'Heimdall started', { ...IMAGE.env, ...env });
  await p.found;
  const admin = p.lines.find((l) => l.component === 'admin' && l.port).port;
  const grpc = p.lines.find((l) => l.component === 'grpc' && l.port).port;
  await waitFor200(`http://127.0.0.1:${admin}/readyz`);
  return { child: p.child, admin, grpc, ms: performance.now() - t0 };
}

/** Median RSS (MiB) of `count` samples one second apart, and the thread count. */
export async function idleFigures(pid, count = 5) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    samples.push(rssMiB(pid).rss);
    await sleep(1_000);
  }
  return { rss: median(samples), threads: threadCount(pid) };
}

/**
 * Bare Node baseline: `bench/baselines/http-noop.mjs` (node:http, no dependencies) pinned to core 0,
 * idle for `idleMs`; its RSS and threads.
 */
export async function bareNodeIdle(idleMs) {
  const p = startPinned(0, [join(import.meta.dirname, 'baselines', 'http-noop.mjs')], (l) => typeof l.port === 'number');
  await p.found;
  await sleep(idleMs);
  const figures = await idleFigures(p.child.pid);
  await stop(p.child);
  return figures;
}

/**
 * Open-loop OTLP/gRPC load at `rate` requests/s (100 spans each) over 2 HTTP/2 connections for
 * `ms`, at most 64 in flight (a request due while 64 are open is counted as skipped); plus one
 * query (SearchTraces, GetSummary, ListServices in turn, Connect JSON on the admin port) every
 * `queryEveryMs`. Resolves with the counts.
 */
export async function mixedLoad({ grpc, admin, rate, ms, queryEveryMs }) {
  const bodies = Array.from({ length: 8 }, () => {
    const message = traceRequestBytes(100);
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    return frame;
  });
  const sessions = [connect(`http://127.0.0.1:${grpc}`), connect(`http://127.0.0.1:${grpc}`)];
  for (const s of sessions) s.on('error', () => {});
  const counts = { sent: 0, ok: 0, failed: 0, skipped: 0, queries: 0, queryFailures: 0 };
  let inFlight = 0;
  const pending = new Set();
  const send = (i) =>
    new Promise((resolve) => {
      inFlight++;
      const stream = sessions[i % 2].request({ [constants.HTTP2_HEADER_METHOD]: 'POST', [constants.HTTP2_HEADER_PATH]: '/opentelemetry.proto.collector.trace.v1.TraceService/Export', 'content-type': 'application/grpc', te: 'trailers' });
      let status;
      stream.on('trailers', (t) => (status = t['grpc-status']));
      stream.on('response', (h) => (status ??= h['grpc-status']));
      stream.on('data', () => {});
      stream.on('error', () => {});
      stream.on('close', () => {
        inFlight--;
        if (status === '0') counts.ok++;
        else counts.failed++;
        resolve();
      });
      stream.end(bodies[i % bodies.length]);
    });
  const queries = [
    ['SearchTraces', { since: '15m', pageSize: 20 }],
    ['GetSummary', { since: '15m' }],
    ['ListServices', { since: '15m' }],
  ];
  const query = async (i) => {
    const [method, body] = queries[i % queries.length];
    const res = await fetch(`http://127.0.0.1:${admin}/heimdall.v1.QueryService/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).catch(() => undefined);
    await res?.arrayBuffer();
    if (res?.status === 200) counts.queries++;
    else counts.queryFailures++;
  };
  const t0 = performance.now();
  let nextQuery = t0;
  let q = 0;
  for (let i = 0; performance.now() - t0 < ms; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (inFlight >= 64) counts.skipped++;
    else {
      counts.sent++;
      const p = send(i);
      pending.add(p);
      void p.then(() => pending.delete(p));
    }
    if (performance.now() >= nextQuery) {
      nextQuery += queryEveryMs;
      const p = query(q++);
      pending.add(p);
      void p.then(() => pending.delete(p));
    }
  }
  await Promise.all(pending);
  for (const s of sessions) s.close();
  return { ...counts, wallMs: performance.now() - t0 };
}

/**
 * One transport's footprint run: start the agent, idle `idleMs`, measure idle RSS and threads, run
 * the mixed load for `loadMs`, then sample RSS every second for `afterMs`. Returns the idle
 * figures, the peak during the load, the first second at which RSS was back within 20% of idle
 * (undefined when it never was), and RSS at the end.
 */
export async function footprintRun({ work, storageUrl, idleMs, loadMs, afterMs, rate, queryEveryMs, env }) {
  const dir = mkdtempSync(join(work, 'agent-'));
  const agent = await startAgent(agentConfig(dir, storageUrl), env);
  const pid = agent.child.pid;
  try {
    await sleep(idleMs);
    const idle = await idleFigures(pid);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid).rss)), 500);
    const load = await mixedLoad({ grpc: agent.grpc, admin: agent.admin, rate, ms: loadMs, queryEveryMs });
    clearInterval(sampler);
    const atLoadEnd = rssMiB(pid).rss;
    const threadsLoaded = threadCount(pid);
    let backAfterS;
    let last = atLoadEnd;
    for (let s = 1; s <= afterMs / 1000; s++) {
      await sleep(1_000);
      last = rssMiB(pid).rss;
      if (backAfterS === undefined && last <= idle.rss * 1.2) backAfterS = s;
    }
    return { idle, peak, atLoadEnd, threadsLoaded, backAfterS, end: last, load };
  } finally {
    await stop(agent.child);
  }
}

/** Starts the test-only ClickHouse HTTP endpoint (`bench/ch-endpoint.mjs`, chdb) pinned to core 1; resolves with its URL and a stop function. */
export async function startClickHouseEndpoint(work) {
  const ch = startPinned(1, [join(import.meta.dirname, 'ch-endpoint.mjs'), mkdtempSync(join(work, 'ch-'))], (l) => typeof l.port === 'number');
  const { port } = await ch.found;
  return { url: `http://127.0.0.1:${port}`, stop: () => stop(ch.child) };
}
