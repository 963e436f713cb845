// Events benchmark. An agent with embedded storage (core 0, chdb's threads included) over a data
// directory pre-filled with BENCH_EVENTS events (10 million by default) spread over the last 24 h.
// 1. Writes: StreamEvents (10 batches of 1000 events per call) and WriteEvents (100 per call) from a
//    load process on core 1: events/s, agent CPU-s per 100k events, call latency.
// 2. Reads over the full table, one call at a time from this process: ListEvents first page (no
//    filter, one tenant, a source and a minimum severity, message text), GetTrace by trace id and by
//    correlation id, GetSummary over 24 h: p50 / p99 / max.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { connect } from '../dist/cli/client.js';
import { StreamEventsRequestSchema, WriteEventsRequestSchema } from '../dist/gen/heimdall/v1/events_pb.js';
import { QueryService } from '../dist/gen/heimdall/v1/query_pb.js';
import { f, percentile, rssMiB, startPinned, threadCpuSeconds } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000_000);
const DURATION = Number(process.env.BENCH_DURATION ?? 20_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-events-'));
const data = join(work, 'data');

const t0 = performance.now();
const filled = JSON.parse(execFileSync('taskset', ['-c', '0', process.execPath, join(import.meta.dirname, 'events-fill.mjs'), data, String(EVENTS)], { encoding: 'utf8' }));
const fillSeconds = (performance.now() - t0) / 1000;

const event = (i) => ({ eventType: 'bench.write', source: `bench-${i % 20}`, severity: (i % 6) + 1, category: 'bench', message: `benchmark event ${i}`, correlationId: `bench-corr-${i}`, actorId: `user-${i % 1000}`, status: 'ok', durationMs: i % 100, payload: { order: { items: i % 5, total: 12.5 } } });
const streamBody = join(work, 'stream.bin');
writeFileSync(streamBody, toBinary(StreamEventsRequestSchema, create(StreamEventsRequestSchema, { events: Array.from({ length: 1000 }, (_, i) => event(i)) })));
const writeBody = join(work, 'write.bin');
writeFileSync(writeBody, toBinary(WriteEventsRequestSchema, create(WriteEventsRequestSchema, { events: Array.from({ length: 100 }, (_, i) => event(i)) })));

const config = join(work, 'heimdall.yaml');
writeFileSync(
  config,
  [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${data}" } }`,
    'shutdown: { drain: 0s }',
  ].join('\n'),
);
const agent = startPinned(0, [join(ROOT, 'dist', 'bundle', 'main.js'), 'run', '--config', config], (l) => l.msg === 'Heimdall started');
await agent.found;
const grpc = agent.lines.find((l) => l.component === 'grpc' && l.port).port;

function load(path, body, messages, concurrency, durationMs) {
  return new Promise((resolve, reject) => {
    const p = spawn('taskset', ['-c', '1', process.execPath, join(import.meta.dirname, 'load-grpc.mjs'), `127.0.0.1:${grpc}`, body, String(durationMs), String(concurrency), path, String(messages)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
}

async function writes(name, path, body, eventsPerCall, messages, concurrency) {
  await load(path, body, messages, concurrency, 3_000); // warm-up
  const c0 = threadCpuSeconds(agent.child.pid);
  const r = await load(path, body, messages, concurrency, DURATION);
  const c1 = threadCpuSeconds(agent.child.pid);
  const events = r.ok * eventsPerCall;
  const engine = c1.engine - c0.engine;
  const own = c1.js + c1.node - c0.js - c0.node;
  return { name, eventsPerSec: events / r.wall, cpuPer100k: ((own + engine) / events) * 1e5, enginePer100k: (engine / events) * 1e5, perOwnCore: events / own, p50: r.p50, p99: r.p99, failed: r.failed };
}

const writeResults = [
  await writes('StreamEvents, 10 x 1000 events per call, 8 streams', '/heimdall.v1.EventService/StreamEvents', streamBody, 10_000, 10, 8),
  await writes('WriteEvents, 100 events per call, 64 in flight', '/heimdall.v1.EventService/WriteEvents', writeBody, 100, 1, 64),
];

const client = connect({ addr: `127.0.0.1:${grpc}` });
const ago = (ms) => {
  const t = Date.now() - ms;
  return { seconds: BigInt(Math.floor(t / 1000)), nanos: (t % 1000) * 1e6 };
};
async function timed(name, make) {
  await client.unary(...make(0)); // warm-up
  const times = [];
  let items = 0;
  for (let i = 1; i <= QUERIES; i++) {
    const args = make(i);
    const t = performance.now();
    const res = await client.unary(...args);
    times.push(performance.now() - t);
    items += res.events?.length ?? res.items?.length ?? Number(res.events ?? 0);
  }
  times.sort((a, b) => a - b);
  return { name, p50: percentile(times, 50), p99: percentile(times, 99), max: times[times.length - 1], items: items / QUERIES };
}
const n = (i) => (i * 7919) % Math.floor(EVENTS / 5);
const readResults = [
  await timed('ListEvents first page (100), last hour, no filter', () => [QueryService.method.listEvents, { pageSize: 100 }]),
  await timed('ListEvents first page, one tenant, last 24 h', (i) => [QueryService.method.listEvents, { tenantId: `tenant-${i % 10}`, startTime: ago(86_400_000), pageSize: 100 }]),
  await timed('ListEvents first page, source + min severity error, last 24 h', (i) => [QueryService.method.listEvents, { sources: [`svc-${i % 50}`], minSeverity: 5, startTime: ago(86_400_000), pageSize: 100 }]),
  await timed('ListEvents by correlation id, last 24 h', (i) => [QueryService.method.listEvents, { correlationId: `corr-${n(i)}`, startTime: ago(86_400_000) }]),
  await timed('ListEvents message contains, last hour', (i) => [QueryService.method.listEvents, { messageContains: `for user ${i % 10007}`, pageSize: 100 }]),
  await timed('GetTrace by trace id', (i) => [QueryService.method.getTrace, { id: { case: 'traceId', value: md5hex(String(n(i))) } }]),
  await timed('GetTrace by correlation id', (i) => [QueryService.method.getTrace, { id: { case: 'correlationId', value: `corr-${n(i)}` } }]),
  await timed('GetSummary, last 24 h', () => [QueryService.method.getSummary, {}]),
];
client.close();
const rss = rssMiB(agent.child.pid);
agent.child.kill('SIGTERM');
await new Promise((res) => agent.child.once('exit', res));
rmSync(work, { recursive: true, force: true });

function md5hex(s) {
  return createHash('md5').update(s).digest('hex');
}

const lines = [
  `Pre-filled ${filled.events.toLocaleString('en')} events (24 h, 10 tenants, 50 sources) in ${f(fillSeconds, 0)} s.`,
  '',
  "| writes | events/s | agent CPU-s per 100k events (of which ClickHouse engine) | events/s per core of Heimdall's own CPU | call p50 / p99 | failed calls |",
  '|---|---|---|---|---|---|',
  ...writeResults.map((r) => `| ${r.name} | ${f(r.eventsPerSec, 0)} | ${f(r.cpuPer100k, 2)} (${f(r.enginePer100k, 2)}) | ${f(r.perOwnCore, 0)} | ${f(r.p50, 1)} / ${f(r.p99, 1)} ms | ${r.failed} |`),
  '',
  `| reads over ${(filled.events / 1e6).toFixed(0)}M+ events, one at a time, ${QUERIES} each | p50 | p99 | max | items per answer |`,
  '|---|---|---|---|---|',
  ...readResults.map((r) => `| ${r.name} | ${f(r.p50, 1)} ms | ${f(r.p99, 1)} ms | ${f(r.max, 1)} ms | ${f(r.items, 1)} |`),
  '',
  `Agent RSS at the end ${f(rss.rss, 0)} MiB (peak ${f(rss.peak, 0)} MiB); node ${process.version}.`,
];
process.stdout.write(`\n${lines.join('\n')}\n`);
