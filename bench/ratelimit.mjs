// Rate-limit benchmark: ShouldRateLimit on an agent pinned to core 0, driven by h2load on core 1
// (a Node client cannot saturate a Node gRPC server). Same run, same server: the no-op baseline is
// grpc.health.v1.Health/Check through the same call wrapper. Reports peak checks/s (ratio to the
// no-op), then p50/p99/p999 at fixed offered loads from h2load's per-request log: the local
// backend at half of its peak, and the Redis backend (a real redis-server on core 1) at 10,000/s.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { connect } from '../dist/cli/client.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitService } from '../dist/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { HealthCheckRequestSchema } from '../dist/gen/grpc/health/v1/health_pb.js';
import { cpuSeconds, f, percentile, startPinned } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-rl-'));

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

function h2load(path, body, args, logFile) {
  const out = execFileSync(
    'taskset',
    ['-c', '1', 'h2load', ...args, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', body, ...(logFile ? ['--log-file', logFile] : []), `http://127.0.0.1:${grpcPort}${path}`],
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

function atRate(path, body, rate) {
  const log = join(work, `log-${rate}-${Date.now()}.tsv`);
  const clients = 4;
  const r = h2load(path, body, ['-c', String(clients), '-m', '8', '--rps', String(Math.ceil(rate / clients)), '-D', String(SECONDS), '--warm-up-time', '1'], log);
  // --log-file lines: start time (µs), status, duration (µs).
  const times = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split('\t')[2]) / 1000)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  return { ...r, p50: percentile(times, 50), p99: percentile(times, 99), p999: percentile(times, 99.9), n: times.length };
}

const noop = peak(HEALTH, healthBody);
const local = peak(RLS, rlBody);
const localHalf = atRate(RLS, rlBody, Math.round(local.rps / 2));
const shared = atRate(RLS, redisBody, 10_000);
const sharedPeak = peak(RLS, redisBody);

agent.child.kill('SIGTERM');
redis.kill('SIGKILL');
await new Promise((r) => agent.child.once('exit', r));
rmSync(work, { recursive: true, force: true });

const lines = [
  '| run | checks/s | ratio to no-op | agent CPU per call | p50 / p99 / p999 |',
  '|---|---|---|---|---|',
  `| no-op baseline: Health/Check, same server, peak | ${f(noop.rps, 0)} | 1.00 | ${f(noop.cpuMicros, 0)} µs | |`,
  `| ShouldRateLimit, local backend, peak | ${f(local.rps, 0)} | ${f(local.rps / noop.rps, 2)} | ${f(local.cpuMicros, 0)} µs | |`,
  `| ShouldRateLimit, local backend, at ${f(local.rps / 2, 0)}/s offered (half of peak) | ${f(localHalf.rps, 0)} | | | ${f(localHalf.p50, 2)} / ${f(localHalf.p99, 2)} / ${f(localHalf.p999, 2)} ms |`,
  `| ShouldRateLimit, Redis backend, at 10,000/s offered | ${f(shared.rps, 0)} | | | ${f(shared.p50, 2)} / ${f(shared.p99, 2)} / ${f(shared.p999, 2)} ms |`,
  `| ShouldRateLimit, Redis backend, peak | ${f(sharedPeak.rps, 0)} | ${f(sharedPeak.rps / noop.rps, 2)} | ${f(sharedPeak.cpuMicros, 0)} µs | |`,
  '',
  `h2load (nghttp2) on core 1, 8 connections x 32 streams for peaks, 4 connections at a fixed rate for latency, ${SECONDS} s each; redis-server on core 1; node ${process.version}.`,
];
process.stdout.write(`\n${lines.join('\n')}\n`);
