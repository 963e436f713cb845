// The Redis backend against the local one (issue 16: "Redis backend: p99 at 5,000/s <= 2x the local
// backend's, with batching of concurrent checks into one round trip where it helps"), in process:
// the agent's check (decode, check, encode; bench/rls-parts.mjs) pinned to core 0, a real
// redis-server on core 1, no transport (bench:ratelimit measures the same through gRPC).
// - Open loop: checks arrive at Poisson instants at BENCH_RATE (default 5,000/s) for BENCH_SECONDS
//   (default 8) after 1 s of warm-up; a check's latency runs from its scheduled instant to its
//   encoded answer, so a stalled loop shows in the tail. Requests: 1-3 descriptors (bench/rls-parts.mjs).
// - Runs, alternating, BENCH_ROUNDS (default 3) rounds: local backend (the same-run baseline);
//   Redis with batching (up to 128 checks, the checks of one event-loop turn in one
//   script call); Redis without (createBuckets' redisMaxBatch 1: one script call per descriptor, as before).
// - Script calls per check: from Redis' INFO commandstats (evalsha + eval) over each run.
// - ratelimit.redis.timeout BENCH_REDIS_TIMEOUT (default 20ms, as bench:ratelimit): descriptors
//   answered by failure_mode past it are counted beside each run.
// Run: npx tsc -b tsconfig.build.json && node bench/rls-redis.mjs
import { execFileSync, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { f } from './lib.mjs';
import { codecs, parts, requests } from './rls-parts.mjs';

const RATE = Number(process.env.BENCH_RATE ?? 5000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** ratelimit.redis.timeout, as bench:ratelimit sets it: a check waiting longer is answered by failure_mode (counted). */
const TIMEOUT = process.env.BENCH_REDIS_TIMEOUT ?? '20ms';

if (process.argv[2] === '--child') await child(process.argv[3]);
else await parent();

/** Offered load at RATE, open loop; answers the latency of each measured check (ms). */
async function openLoop(answer, bodies) {
  const latencies = [];
  const t0 = performance.now();
  const warm = t0 + 1000;
  const end = warm + SECONDS * 1000;
  let next = t0;
  let i = 0;
  let inFlight = 0;
  let errors = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next <= now && next < end) {
        const scheduled = next;
        inFlight += 1;
        answer(bodies[i++ % bodies.length]).then(
          () => {
            inFlight -= 1;
            if (scheduled >= warm) latencies.push(performance.now() - scheduled);
          },
          () => {
            inFlight -= 1;
            errors += 1;
          },
        );
        next += (-Math.log(1 - Math.random()) * 1000) / RATE;
      }
      if (next < end) setTimeout(tick, Math.max(0, Math.min(1, next - performance.now())));
      else {
        const drain = () => (inFlight === 0 ? resolve() : setTimeout(drain, 1));
        drain();
      }
    };
    tick();
  });
  return { latencies, errors, issued: i };
}

async function child(mode) {
  const port = Number(process.env.BENCH_REDIS_PORT);
  const redis = mode === 'local' ? undefined : { url: `redis://127.0.0.1:${port}`, timeout: TIMEOUT };
  const check = await parts(redis, mode === 'unbatched' ? 1 : undefined);
  const bodies = await requests(mode !== 'local');
  const { decode, encode } = await codecs();
  const answer = async (bytes) => encode(await check(decode(bytes)));
  const cpu0 = process.cpuUsage();
  const { latencies, errors, issued } = await openLoop(answer, bodies);
  const cpu = process.cpuUsage(cpu0);
  const fallbacks = (await check.metrics.getSingleMetric('heimdall_ratelimit_backend_errors_total')?.get())?.values[0]?.value ?? 0;
  await check.close();
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  process.stdout.write(`${JSON.stringify({ mode, calls: latencies.length, errors, p50: q(0.5), p99: q(0.99), p999: q(0.999), cpuMicros: (cpu.user + cpu.system) / issued, fallbacks })}\n`);
}

async function parent() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = spawn('taskset', ['-c', '1', 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => (out += d).includes('Ready to accept connections') && resolve());
    server.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
  });
  const admin = new Redis({ port, host: '127.0.0.1' });
  const scriptCalls = async () => [...(await admin.info('commandstats')).matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  const runs = { local: [], redis: [], unbatched: [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of Object.keys(runs)) {
        const before = await scriptCalls();
        const out = execFileSync('taskset', ['-c', '0', process.execPath, import.meta.filename, '--child', mode], { env: { ...process.env, BENCH_REDIS_PORT: String(port) }, encoding: 'utf8' });
        const result = JSON.parse(out.trim().split('\n').pop());
        // Calls per check over the whole run (warm-up included: RATE x (SECONDS + 1) checks offered).
        result.scriptCallsPerCheck = ((await scriptCalls()) - before) / (RATE * (SECONDS + 1));
        runs[mode].push(result);
      }
    }
  } finally {
    admin.disconnect();
    server.kill('SIGKILL');
  }
  report(runs);
}

function report(runs) {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const p99 = (mode) => median(runs[mode].map((r) => r.p99));
  const ratios = (mode) => runs[mode].map((r, i) => r.p99 / runs.local[i].p99);
  const spread = (xs) => `${f(Math.min(...xs), 2)}-${f(Math.max(...xs), 2)}`;
  const row = (label, mode, target) => {
    const rs = ratios(mode);
    const met = target === undefined ? '' : median(rs) <= target ? 'met' : '**not met**';
    const calls = median(runs[mode].map((r) => r.scriptCallsPerCheck));
    const cpu = (m) => median(runs[m].map((r) => r.cpuMicros));
    return `| ${label} | ${f(p99(mode), 2)} ms | ${f(p99('local'), 2)} ms | ${f(median(rs), 2)} (${spread(rs)}) | ${target === undefined ? '(reported)' : `<= ${target}`} ${met} | ${f(calls, 3)} | ${f(cpu(mode), 1)} / ${f(cpu('local'), 1)} |`;
  };
  const lines = [
    `| p99 at ${RATE}/s, in process | Redis | local backend (same run) | ratio, median of ${ROUNDS} rounds (spread) | target | script calls per check | CPU µs per check, this / local |`,
    '|---|---|---|---|---|---|---|',
    row('Redis, checks of one event-loop turn batched (up to 128 a call)', 'redis', 2),
    row('Redis, one script call per descriptor (batches of 1)', 'unbatched'),
    '',
    `| run | p50 / p99 / p99.9 ms (errors) | CPU µs per check | descriptors answered by failure_mode (Redis over ${TIMEOUT}) |`,
    '|---|---|---|---|',
    ...Object.entries(runs).flatMap(([mode, rs]) => rs.map((r, i) => `| ${mode}, round ${i + 1} | ${f(r.p50, 2)} / ${f(r.p99, 2)} / ${f(r.p999, 2)}${r.errors ? ` (${r.errors})` : ''} | ${f(r.cpuMicros, 1)} | ${r.fallbacks ?? 0} |`)),
    '',
    `Checks of 1-3 descriptors, open loop (Poisson) at ${RATE}/s for ${SECONDS} s after 1 s of warm-up; check on core 0, redis-server on core 1; node ${process.version}.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
