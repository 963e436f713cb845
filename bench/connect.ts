// Connect API benchmark: the cost of serving heimdall.v1 over Connect on the admin port. One method
// (SystemService/GetStatus: no storage, a ~1 KB answer) over Connect JSON and Connect binary
// (HTTP/1.1, admin port), over gRPC (HTTP/2, port 4317), and a bare node:http server answering a
// JSON body of the same size, in rounds that alternate the four, all in one run. The agent and the
// baseline run pinned to core 0; h2load and this script (the 1-in-flight latency client) to core 1.
// Prints calls/s at saturation, server CPU per call, p50/p99 latency with one call in flight, RSS,
// and ratios against the bare server.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Client, Metadata } from '@grpc/grpc-js';
import { cpuSeconds, f, h2load, percentile, rssMiB, startPinned } from './lib.mjs';

// Re-run pinned to core 1 (the latency client must not share the server's core).
if (process.env.HEIMDALL_BENCH_PINNED !== '1') {
  const r = spawnSync('taskset', ['-c', '1', process.execPath, ...process.execArgv, import.meta.filename, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, HEIMDALL_BENCH_PINNED: '1' } });
  process.exit(r.status ?? 1);
}

const ROOT = join(import.meta.dirname, '..');
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 1_000);
/** Calls in flight during the throughput runs, the same for every variant. */
const IN_FLIGHT = 32;
const METHOD = '/heimdall.v1.SystemService/GetStatus';
// Requests of 2 bytes each: `{}`, and an empty GetStatusRequest plus one unknown varint field (h2load
// cannot send an empty body), the same inside a gRPC frame.
const PROTO_REQUEST = new Uint8Array([0x78, 0x00]);

const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-connect-'));
const file = (name: string, data: string | Uint8Array): string => {
  const path = join(work, name);
  writeFileSync(path, data);
  return path;
};

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** The agent on core 0 (auth off on loopback, embedded storage), once started. */
async function startAgent() {
  const config = file(
    'heimdall.yaml',
    `server:\n  grpc: { address: "127.0.0.1:0" }\n  otlp_http: { address: "127.0.0.1:0" }\n  admin: { address: "127.0.0.1:0" }\nstorage:\n  embedded: { path: "${join(work, 'data')}" }\nshutdown: { drain: 0s }\n`,
  );
  const p = startPinned(0, [join(ROOT, 'dist', 'bundle', 'main.js'), 'run', '--config', config], (l) => l.msg === 'Heimdall started');
  await p.found;
  const admin: number = p.lines.find((l) => l.component === 'admin' && l.port).port;
  const grpc: number = p.lines.find((l) => l.component === 'grpc' && l.port).port;
  return { child: p.child, admin, grpc };
}

/** POSTs `body` over one keep-alive connection; resolves with the answer's status and text. */
function post(agent: Agent, url: string, body: Uint8Array | string, contentType: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Latencies (ms, sorted) of `count` calls made one after another. */
async function sequential(count: number, call: () => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times;
}

/** A variant: how h2load loads it, and one call for the latency runs. */
interface Variant {
  name: string;
  pid: () => number;
  h2loadArgs: () => string[];
  call: () => Promise<void>;
}

const agent = await startAgent();
// Whatever happens, the pinned servers do not outlive the benchmark.
const children: ChildProcess[] = [agent.child];
process.once('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
const adminUrl = `http://127.0.0.1:${agent.admin}${METHOD}`;
const sample = await post(keepAlive, adminUrl, '{}', 'application/json');
if (sample.status !== 200) throw new Error(`GetStatus over Connect answered ${sample.status}: ${sample.text}`);
const base = startPinned(0, [join(import.meta.dirname, 'baselines', 'http-json.mjs')], (l) => typeof l.port === 'number', { BENCH_BODY: sample.text });
children.push(base.child);
const basePort: number = (await base.found).port;
const grpcClient = new Client(`127.0.0.1:${agent.grpc}`, credentials.createInsecure());
const id = (b: Buffer): Buffer => b;
const grpcCall = (): Promise<void> =>
  new Promise((resolve, reject) => grpcClient.makeUnaryRequest(METHOD, id, id, Buffer.from(PROTO_REQUEST), new Metadata(), (err) => (err ? reject(err) : resolve())));

const jsonBody = file('request.json', '{}');
const protoBody = file('request.bin', PROTO_REQUEST);
const grpcFrame = file('request.grpc', new Uint8Array([0, 0, 0, 0, PROTO_REQUEST.length, ...PROTO_REQUEST]));
const h1 = (url: string, body: string, contentType: string) => () => ['--h1', '-n', String(REQUESTS), '-c', String(IN_FLIGHT), '-t', '1', '-d', body, '-H', `content-type: ${contentType}`, url];
const ok = async (p: Promise<{ status: number; text: string }>): Promise<void> => {
  const r = await p;
  if (r.status !== 200) throw new Error(`answered ${r.status}: ${r.text}`);
};
const variants: Variant[] = [
  { name: 'Connect JSON (admin, HTTP/1.1)', pid: () => agent.child.pid ?? 0, h2loadArgs: h1(adminUrl, jsonBody, 'application/json'), call: () => ok(post(keepAlive, adminUrl, '{}', 'application/json')) },
  { name: 'Connect binary (admin, HTTP/1.1)', pid: () => agent.child.pid ?? 0, h2loadArgs: h1(adminUrl, protoBody, 'application/proto'), call: () => ok(post(keepAlive, adminUrl, PROTO_REQUEST, 'application/proto')) },
  {
    name: 'gRPC (4317, HTTP/2)',
    pid: () => agent.child.pid ?? 0,
    h2loadArgs: () => ['-n', String(REQUESTS), '-c', '8', '-m', String(IN_FLIGHT / 8), '-t', '1', '-d', grpcFrame, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${agent.grpc}${METHOD}`],
    call: grpcCall,
  },
  { name: 'bare node:http, same JSON answer', pid: () => base.child.pid ?? 0, h2loadArgs: h1(`http://127.0.0.1:${basePort}/`, jsonBody, 'application/json'), call: () => ok(post(keepAlive, `http://127.0.0.1:${basePort}/`, '{}', 'application/json')) },
];

const results = variants.map(() => ({ rps: [] as number[], cpuUs: [] as number[], failed: 0, latencies: [] as number[] }));
for (const v of variants) await sequential(200, v.call); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the variants, rotating the first, so no variant always runs on a quieter machine.
  for (let k = 0; k < variants.length; k++) {
    const i = (k + round) % variants.length;
    const v = variants[i] as Variant;
    const r = results[i] as (typeof results)[number];
    const cpu0 = cpuSeconds(v.pid());
    const load = h2load(1, v.h2loadArgs());
    const cpu = cpuSeconds(v.pid()) - cpu0;
    const twoxx = Number(/status codes: (\d+) 2xx/.exec(load.raw)?.[1] ?? 0);
    r.failed += REQUESTS - twoxx;
    r.rps.push(load.rps);
    r.cpuUs.push((cpu * 1e6) / load.succeeded);
    r.latencies.push(...(await sequential(SEQUENTIAL, v.call)));
  }
}
const agentRss = rssMiB(agent.child.pid ?? 0);
const baseRss = rssMiB(base.child.pid ?? 0);
grpcClient.close();
keepAlive.destroy();
await stop(base.child);
await stop(agent.child);
rmSync(work, { recursive: true, force: true });

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const summary = results.map((r) => {
  const lat = [...r.latencies].sort((a, b) => a - b);
  return { rps: median(r.rps), cpuUs: median(r.cpuUs), p50: percentile(lat, 50), p99: percentile(lat, 99), failed: r.failed };
});
const bare = summary[3] as (typeof summary)[number];
const rows = variants.map((v, i) => {
  const s = summary[i] as (typeof summary)[number];
  return [v.name, f(s.rps, 0), f(s.cpuUs, 1), `${f(s.p50, 3)} / ${f(s.p99, 3)}`, f(s.rps / bare.rps, 2), f(s.cpuUs / bare.cpuUs, 2), String(s.failed)];
});
const table = [
  `| ${METHOD} | calls/s (${IN_FLIGHT} in flight) | server CPU µs/call | latency p50 / p99 ms (1 in flight) | calls/s vs bare | CPU vs bare | not 2xx |`,
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.join(' | ')} |`),
].join('\n');
const json = summary[0] as (typeof summary)[number];
const grpc = summary[2] as (typeof summary)[number];
process.stdout.write(
  `\n${table}\n\nConnect JSON vs gRPC: ${f(json.rps / grpc.rps, 2)}x the calls/s, ${f(json.cpuUs / grpc.cpuUs, 2)}x the CPU per call. ` +
    `Answer: ${Buffer.byteLength(sample.text)} bytes of JSON. RSS after: agent ${f(agentRss.rss, 0)} MiB (peak ${f(agentRss.peak, 0)}), bare server ${f(baseRss.rss, 0)} MiB.\n` +
    `Medians of ${ROUNDS} rounds of ${REQUESTS} calls; latency over ${ROUNDS * SEQUENTIAL} sequential calls per variant; node ${process.version}.\n`,
);
