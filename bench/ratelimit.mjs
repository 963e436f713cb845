// Rate-limit benchmark: ShouldRateLimit on an agent pinned to core 0, load from core 1 (a Node
// client cannot saturate a Node gRPC server). Same run, same server: the no-op baseline is
// grpc.health.v1.Health/Check through the same call wrapper.
// - Peaks (checks/s, ratio to the no-op, agent CPU per call): h2load, 8 connections x 32 streams.
// - Latency at fixed offered loads: bench/rlload.c (built here; needs cc and libnghttp2-dev), an
//   open-loop client sending at Poisson instants and timing each call from its scheduled instant.
//   h2load's --rps mode sends 10 ms bursts, so it measures its bursts, not the server.
//   The no-op and ShouldRateLimit (local) run at the same offered loads, the Redis backend (a real
//   redis-server on core 1) at 10,000/s as the issue asks.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { connect } from '../dist/cli/client.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitService } from '../dist/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { HealthCheckRequestSchema } from '../dist/gen/grpc/health/v1/health_pb.js';
import { cpuSeconds, f, startPinned } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-rl-'));
const rlload = join(work, 'rlload');
try {
  execFileSync('cc', ['-O2', '-o', rlload, join(ROOT, 'bench', 'rlload.c'), '-lnghttp2', '-lm'], { stdio: 'pipe' });
} catch (err) {
  throw new Error(`cannot build bench/rlload.c (needs cc and libnghttp2-dev): ${err.stderr ?? err.message}`, { cause: err });
}

const frame = (bytes) => {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(out, 5);
  return out;
};
const rlBody = join(work, 'rl.bin');
const request = (key) => ({ domain: 'bench', descriptors: [{ entries: [{ key, value: '10.0.0.1' }] }] });
writeFileSync(rlBody, frame(toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, request('remote_address')))));
const redisBody = join(work, 'redis.bin');
writeFileSync(redisBody, frame(toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, request('shared_address')))));
const healthBody = join(work, 'health.bin');
writeFileSync(healthBody, frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))));

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const redisPort = await freePort();
const redis = spawn('taskset', ['-c', '1', 'redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));

mkdirSync(join(work, 'limits'));
writeFileSync(
  join(work, 'limits', 'bench.yaml'),
  [
    'domain: bench',
    'descriptors:',
    '  - key: remote_address',
    '    rate_limit: { unit: second, requests_per_unit: 1000000000 }',
    '  - key: shared_address',
    '    rate_limit: { unit: second, requests_per_unit: 1000000000, backend: redis }',
  ].join('\n'),
);
const config = join(work, 'heimdall.yaml');
writeFileSync(
  config,
  [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${join(work, 'data')}" } }`,
    `ratelimit: { config_path: "${join(work, 'limits')}", redis: { url: "redis://127.0.0.1:${redisPort}", timeout: 20ms } }`,
    'shutdown: { drain: 0s }',
  ].join('\n'),
);
const agent = startPinned(0, [join(ROOT, 'dist', 'main.js'), 'run', '--config', config], (l) => l.component === 'grpc' && typeof l.port === 'number');
const grpcPort = (await agent.found).port;
await new Promise((r) => setTimeout(r, 1500));

// Both requests must be valid checks that pass (h2load sees HTTP 200 even for a gRPC error).
const client = connect({ addr: `127.0.0.1:${grpcPort}` });
for (const key of ['remote_address', 'shared_address']) {
  const res = await client.unary(RateLimitService.method.shouldRateLimit, request(key));
  if (res.overallCode !== RateLimitResponse_Code.OK || !res.statuses[0]?.currentLimit) throw new Error(`bench request for ${key} is not a passing, limited check`);
}
client.close();

function h2load(path, body, args) {
  const out = execFileSync(
    'taskset',
    ['-c', '1', 'h2load', ...args, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', body, `http://127.0.0.1:${grpcPort}${path}`],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const succeeded = Number(/requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(out)?.[1] ?? NaN);
  return { rps, succeeded };
}
const RLS = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit';
const HEALTH = '/grpc.health.v1.Health/Check';

function peak(path, body) {
  const c0 = cpuSeconds(agent.child.pid);
  const r = h2load(path, body, ['-c', '8', '-m', '32', '-D', String(SECONDS), '--warm-up-time', '2']);
  const cpu = cpuSeconds(agent.child.pid) - c0;
  return { ...r, cpuMicros: (cpu / (r.rps * SECONDS)) * 1e6 };
}

/** Open-loop calls at `rate`/s over 4 connections; latency from each call's scheduled instant. */
function atRate(path, body, rate) {
  const c0 = cpuSeconds(agent.child.pid);
  // rlload exits 1 when some calls failed; its JSON line still counts them.
  const run = spawnSync('taskset', ['-c', '1', rlload, '127.0.0.1', String(grpcPort), path, body, String(rate), String(SECONDS), '4', '1'], { encoding: 'utf8' });
  if (!run.stdout.startsWith('{')) throw new Error(`rlload at ${rate}/s failed: ${run.stderr}`);
  const r = JSON.parse(run.stdout);
  return { ...r, cpu: (cpuSeconds(agent.child.pid) - c0) / (SECONDS + 1) };
}

const noop = peak(HEALTH, healthBody);
const local = peak(RLS, rlBody);
const half = Math.round(local.rps / 2);
const rates = [1000, 2000, half];
const latency = rates.map((rate) => ({ rate, noop: atRate(HEALTH, healthBody, rate), local: atRate(RLS, rlBody, rate) }));
const shared = atRate(RLS, redisBody, 10_000);
const sharedPeak = peak(RLS, redisBody);

agent.child.kill('SIGTERM');
redis.kill('SIGKILL');
await new Promise((r) => agent.child.once('exit', r));
rmSync(work, { recursive: true, force: true });

const ms = (r) => `${f(r.p50, 2)} / ${f(r.p99, 2)} / ${f(r.p999, 2)} ms${r.errors ? `, ${r.errors} failed` : ''}`;
const lines = [
  '| run | checks/s | ratio to no-op | agent CPU per call |',
  '|---|---|---|---|',
  `| no-op baseline: Health/Check, same server, peak | ${f(noop.rps, 0)} | 1.00 | ${f(noop.cpuMicros, 0)} µs |`,
  `| ShouldRateLimit, local backend, peak | ${f(local.rps, 0)} | ${f(local.rps / noop.rps, 2)} | ${f(local.cpuMicros, 0)} µs |`,
  `| ShouldRateLimit, Redis backend, peak | ${f(sharedPeak.rps, 0)} | ${f(sharedPeak.rps / noop.rps, 2)} | ${f(sharedPeak.cpuMicros, 0)} µs |`,
  '',
  '| offered load (open loop) | no-op: achieved, agent CPU, p50 / p99 / p999 | ShouldRateLimit local: achieved, agent CPU, p50 / p99 / p999 |',
  '|---|---|---|',
  ...latency.map(
    ({ rate, noop: n, local: l }) =>
      `| ${rate}/s${rate === half ? ' (half of the local peak)' : ''} | ${f(n.achieved, 0)}/s, ${f(n.cpu * 100, 0)}%, ${ms(n)} | ${f(l.achieved, 0)}/s, ${f(l.cpu * 100, 0)}%, ${ms(l)} |`,
  ),
  `| 10000/s, Redis backend | | ${f(shared.achieved, 0)}/s, ${f(shared.cpu * 100, 0)}%, ${ms(shared)} |`,
  '',
  `Peaks: h2load (nghttp2) on core 1, 8 connections x 32 streams, ${SECONDS} s. Fixed loads: bench/rlload.c on core 1, 4 connections, Poisson arrivals, ${SECONDS} s after 1 s of warm-up. redis-server on core 1; node ${process.version}.`,
];
process.stdout.write(`\n${lines.join('\n')}\n`);
