// Connections under attack: the agent (default limits, ack: queued, embedded storage) against a
// connection flood, slowloris clients and a flood of health Watch streams, all from 127.0.0.2,
// while probes and exports come from 127.0.0.1. Prints the agent's descriptors and RSS, probe
// latencies during each attack against those measured just before it, and how long slow clients
// are held. Agent pinned to core 0, this process (the attacker) to core 1.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import grpc from '@grpc/grpc-js';
import { f, percentile, rssMiB, startPinned } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist', 'bundle', 'main.js');
/** Connections per listener in the flood (this process must hold three times as many descriptors). */
const FLOOD = Number(process.env.BENCH_FLOOD ?? 5_000);
const WATCHES = Number(process.env.BENCH_WATCHES ?? 20_000);

const dir = mkdtempSync(join(tmpdir(), 'heimdall-bench-'));
const config = join(dir, 'heimdall.yaml');
writeFileSync(
  config,
  [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${join(dir, 'data')}" } }`,
    `ingest: { ack: queued, queue: { path: "${join(dir, 'queue')}" } }`,
    'shutdown: { drain: 0s }',
  ].join('\n'),
);
const agent = startPinned(0, [MAIN, 'run', '--config', config], (l) => l.msg === 'Heimdall started');
await agent.found;
const port = (c) => agent.lines.find((l) => l.component === c && l.port).port;
const ports = { grpc: port('grpc'), otlp: port('otlp_http'), admin: port('admin') };
const pid = agent.child.pid;
const fds = () => readdirSync(`/proc/${pid}/fd`).length;
/** The most descriptors and RSS the agent had since the last row (sampled every 100 ms). */
let peakFds = 0;
let peakRss = 0;
const sampler = setInterval(() => {
  peakFds = Math.max(peakFds, fds());
  peakRss = Math.max(peakRss, rssMiB(pid).rss);
}, 100);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** /livez latencies (ms, sorted) of `n` probes from 127.0.0.1, one every 50 ms, each on a new connection (as kubelet probes). */
async function probes(n) {
  const out = [];
  let failed = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const ok = await fetch(`http://127.0.0.1:${ports.admin}/livez`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) }).then(
      async (r) => (await r.arrayBuffer(), r.status === 200),
      () => false,
    );
    if (ok) out.push(performance.now() - t0);
    else failed += 1;
    await sleep(50);
  }
  return { sorted: out.sort((a, b) => a - b), failed };
}
const row = (what, p) => {
  const line = `| ${what} | ${f(percentile(p.sorted, 50), 2)} | ${f(percentile(p.sorted, 99), 2)} | ${f(p.sorted.at(-1) ?? NaN, 2)} | ${p.failed} | ${Math.max(peakFds, fds())} | ${f(Math.max(peakRss, rssMiB(pid).rss), 0)} |`;
  peakFds = 0;
  peakRss = 0;
  return line;
};

/** Opens `n` connections from 127.0.0.2 in batches; each writes `first`. Resolves with them and when each closed. */
async function flood(n, to, first) {
  const held = [];
  for (let i = 0; i < n; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, n - i) }, () =>
        new Promise((resolve) => {
          const s = netConnect({ port: to, host: '127.0.0.1', localAddress: '127.0.0.2' });
          const h = { s, closedAt: undefined };
          held.push(h);
          s.on('error', () => undefined);
          s.resume();
          s.on('close', () => (h.closedAt = performance.now()));
          s.once('connect', () => {
            if (first) s.write(first);
            resolve();
          });
          s.once('close', resolve);
        }),
      ),
    );
  }
  return held;
}
const open = (held) => held.filter((h) => h.closedAt === undefined).length;

console.log(`# Connections under attack (${FLOOD} connections per listener, ${WATCHES} Watch streams)\n`);
console.log('| phase | /livez p50 ms | p99 ms | max ms | failed | agent fds (max) | agent RSS MiB (max) |');
console.log('|---|---|---|---|---|---|---|');
await sleep(2_000);
await probes(10); // warm-up
peakFds = 0;
peakRss = 0;
console.log(row('idle', await probes(100)));

// 1. Flood + slowloris: silent gRPC connections, HTTP requests whose headers never end.
const t0 = performance.now();
const slow = 'POST /v1/traces HTTP/1.1\r\nHost: x\r\n';
const held = [...(await flood(FLOOD, ports.grpc)), ...(await flood(FLOOD, ports.otlp, slow)), ...(await flood(FLOOD, ports.admin, 'GET /metrics HTTP/1.1\r\nHost: x\r\n'))];
const accepted = open(held);
const trickle = setInterval(() => {
  for (const h of held) if (h.closedAt === undefined) h.s.write('x');
}, 1_000);
console.log(row(`flood: ${held.length} opened, ${accepted} held by the agent`, await probes(100)));
const exported = await fetch(`http://127.0.0.1:${ports.otlp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"resourceSpans":[]}' }).then((r) => r.status);
while (open(held) > 0 && performance.now() - t0 < 120_000) await sleep(100);
clearInterval(trickle);
const lastClose = Math.max(...held.map((h) => h.closedAt ?? Number.NaN).filter(Number.isFinite)) - t0;
for (const h of held) h.s.destroy();
console.log(row('after the flood', await probes(50)));

// 2. Watch streams: clients of 100 streams each (one connection apiece), until WATCHES were asked for.
const Watch = { path: '/grpc.health.v1.Health/Watch', requestStream: false, responseStream: true, requestSerialize: () => Buffer.from([0x0a, 0x00]), responseDeserialize: (b) => b };
const clients = [];
const streams = [];
let served = 0;
let refused = 0;
for (let i = 0; i < WATCHES; i += 100) {
  const c = new grpc.Client(`127.0.0.1:${ports.grpc}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  clients.push(c);
  for (let k = 0; k < 100; k++) {
    const s = c.makeServerStreamRequest(Watch.path, Watch.requestSerialize, Watch.responseDeserialize, {});
    s.once('data', () => (served += 1));
    s.on('error', (e) => void (e.code === grpc.status.RESOURCE_EXHAUSTED && (refused += 1)));
    streams.push(s);
  }
}
const tw = performance.now();
while (served + refused < WATCHES && performance.now() - tw < 60_000) await sleep(200);
console.log(row(`${WATCHES} Watch asked: ${served} served, ${refused} refused`, await probes(100)));
for (const s of streams) s.cancel();
for (const c of clients) c.close();

console.log(`\nSlow clients (headers never finished, gRPC without HTTP/2 opening) all closed ${f(lastClose / 1000, 1)} s after the flood began; an OTLP export during the flood answered ${exported}; peak agent RSS ${f(rssMiB(pid).peak, 0)} MiB.`);
clearInterval(sampler);
const exited = new Promise((r) => agent.child.once('exit', r));
agent.child.kill('SIGTERM');
await exited;
rmSync(dir, { recursive: true, force: true });
