// Query fairness benchmark. An agent with embedded storage (core 0) over a data directory pre-filled
// with BENCH_EVENTS events over the last 24 h (10 tenants). Tenant "tenant-1" lists its newest
// events (ListEvents, first page of 100, one call at a time) while idle, then while tenant
// "tenant-0" floods the agent with BENCH_FLOOD concurrent loops of GetSummary over the whole data
// (24 h; an all-time window is refused by query.max_window). Prints the victim's p50 / p99 both ways
// and what happened to the flood (summaries answered, refused by which limit; a refused loop waits
// 100 ms before it asks again).
//
//   node bench/query-fairness.mjs [path to a build's dist/, default ./dist]
// BENCH_QUERY sets the agent's `query` section (YAML flow map), e.g. '{ max_concurrent_per_tenant: 1 }'.
// Run it on two builds (e.g. main's and this branch's) to compare; the fill is kept in
// BENCH_DATA when given (copied for each run, since one agent holds a data directory).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from '../dist/cli/client.js';
import { QueryService } from '../dist/gen/heimdall/v1/query_pb.js';
import { f, percentile, startPinned } from './lib.mjs';

const dist = resolve(process.argv[2] ?? join(import.meta.dirname, '..', 'dist'));
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5_000_000);
const FLOOD = Number(process.env.BENCH_FLOOD ?? 8);
const CALLS = Number(process.env.BENCH_CALLS ?? 40);
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-query-'));
const filled = process.env.BENCH_DATA ?? join(work, 'filled');
if (!existsSync(filled)) execFileSync('taskset', ['-c', '0', process.execPath, join(import.meta.dirname, 'events-fill.mjs'), filled, String(EVENTS)], { stdio: ['ignore', 'ignore', 'inherit'] });
const data = join(work, 'data');
cpSync(filled, data, { recursive: true });

const TOKENS = { flood: 'bench-flood-token-tenant-0', victim: 'bench-victim-token-tenant-1' };
const config = join(work, 'heimdall.yaml');
writeFileSync(
  config,
  [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${data}" } }`,
    'jobs: { system_check: { enabled: false } }',
    'auth:',
    '  enabled: true',
    '  tokens:',
    `    - { name: flood, token: ${TOKENS.flood}, scopes: [query], tenant: tenant-0 }`,
    `    - { name: victim, token: ${TOKENS.victim}, scopes: [query], tenant: tenant-1 }`,
    'shutdown: { drain: 0s }',
    ...(process.env.BENCH_QUERY ? [`query: ${process.env.BENCH_QUERY}`] : []),
  ].join('\n'),
);
const agent = startPinned(0, [join(dist, 'bundle', 'main.js'), 'run', '--config', config], (l) => l.msg === 'Heimdall started');
await agent.found;
const grpc = agent.lines.find((l) => l.component === 'grpc' && l.port).port;
const victim = connect({ addr: `127.0.0.1:${grpc}`, token: TOKENS.victim });
const flooder = connect({ addr: `127.0.0.1:${grpc}`, token: TOKENS.flood });

async function victimLatencies() {
  const times = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await victim.unary(QueryService.method.listEvents, { pageSize: 100 });
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}

const allTime = await flooder.unary(QueryService.method.getSummary, { startTime: { seconds: 0n, nanos: 0 } }).then(
  (r) => `answered (${r.events} events)`,
  (err) => `refused: ${err.details}`,
);
await victimLatencies(); // warm-up
const idle = await victimLatencies();

let stop = false;
const outcomes = new Map();
const count = (k) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
const day = () => ({ seconds: BigInt(Math.floor(Date.now() / 1000) - 86_400), nanos: 0 });
const loops = Array.from({ length: FLOOD }, async () => {
  while (!stop) {
    const refusedWith = await flooder.unary(QueryService.method.getSummary, { startTime: day() }).then(
      () => void count('answered'),
      (err) => String(err.details).replace(/:.*$/, '').slice(0, 60),
    );
    // A client that honours "retry later" waits a little before it asks again.
    if (refusedWith !== undefined) {
      count(`refused (${refusedWith})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});
await new Promise((r) => setTimeout(r, 1_000));
const flooded = await victimLatencies();
stop = true;
await Promise.all(loops);
agent.child.kill('SIGTERM');
await new Promise((r) => agent.child.once('exit', r));
victim.close();
flooder.close();

const row = (name, t) => `| ${name} | ${f(percentile(t, 50), 1)} ms | ${f(percentile(t, 99), 1)} ms | ${f(t[t.length - 1], 1)} ms |`;
process.stdout.write(
  [
    `build: ${dist}; query: ${process.env.BENCH_QUERY ?? 'defaults'}; ${EVENTS} events over 24 h; flood: ${FLOOD} concurrent GetSummary loops of tenant-0 over 24 h`,
    `all-time GetSummary of tenant-0: ${allTime}`,
    '',
    '| tenant-1 ListEvents first page (100), one at a time | p50 | p99 | max |',
    '|---|---|---|---|',
    row(`idle (${CALLS} calls)`, idle),
    row(`under the flood (${CALLS} calls)`, flooded),
    '',
    `flood outcomes while measured: ${[...outcomes].map(([k, v]) => `${k}: ${v}`).join(', ')}`,
    '',
  ].join('\n'),
);
if (!process.env.BENCH_DATA) rmSync(work, { recursive: true, force: true });
else rmSync(data, { recursive: true, force: true });
