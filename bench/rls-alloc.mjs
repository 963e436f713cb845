// Per-call cost of ShouldRateLimit once the request bytes are in hand (issue 16's "leaner per-call
// path"): decode the RateLimitRequest, run the agent's check (limits file, local buckets, metrics,
// security policy in normal mode), encode the RateLimitResponse. In process, no transport.
// - Requests: 1,000 distinct pre-encoded requests of 1-3 descriptors (remote_address, user,
//   remote_address+path), each matching a limit, over 5,000 addresses and 2,000 users; cycled.
// - Bytes per call: a child runs with V8's --trace-gc-nvp and --expose-gc; it collects garbage
//   (gc()) before and after N calls, so the `allocated=` of the collections between the two
//   markers is exactly what the N calls allocated. Also counted: scavenges and mark-compacts, and
//   their pauses, per 1,000 calls.
// - ns per call: a child without tracing times N calls (after a warm-up of N/4), rounds alternating.
// - Same-run baseline: the bare server's codec (bench/baselines/grpc-rls.mjs): @bufbuild fromBinary
//   of the same requests and create + toBinary of a one-status OK response, no limiter.
// - Stages: `decode` (request decoder alone), `check` (the check on decoded requests), `encode`
//   (the response encoder on a check's answers), `all` (the three in turn, as a call runs them).
// Knobs: BENCH_CALLS (default 200,000) per measured run; BENCH_ROUNDS (default 3).
// Run: npx tsc -b tsconfig.build.json && node bench/rls-alloc.mjs
import { spawnSync } from 'node:child_process';
import { f } from './lib.mjs';
import { codecs, parts, requests } from './rls-parts.mjs';

const CALLS = Number(process.env.BENCH_CALLS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STAGES = ['all', 'decode', 'check', 'encode', 'baseline'];

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4]);
else parent();

/** Runs `stage` in a child: `alloc` (traced, bytes and GCs) or `time` (ns per call). */
function run(stage, what) {
  const flags = what === 'alloc' ? ['--trace-gc-nvp', '--expose-gc'] : [];
  const r = spawnSync(process.execPath, [...flags, import.meta.filename, '--child', stage, what], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${stage} ${what}: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  if (what === 'time') return JSON.parse(lines.find((l) => l.startsWith('{')));
  const from = lines.indexOf('MARK start');
  const to = lines.indexOf('MARK end');
  let bytes = 0;
  let scavenges = 0;
  let majors = 0;
  let pause = 0;
  for (const l of lines.slice(from + 1, to)) {
    const m = / pause=([\d.]+) .* gc=(\w+) .* allocated=(\d+) /.exec(l);
    if (!m) continue;
    bytes += Number(m[3]);
    // The last collection is the marker's own gc(): its pause is not the calls'.
    if (l === lines.slice(from + 1, to).findLast((x) => x.includes(' allocated='))) continue;
    pause += Number(m[1]);
    if (m[2] === 's') scavenges += 1;
    else majors += 1;
  }
  return { bytes: bytes / CALLS, scavenges: (scavenges * 1000) / CALLS, majors: (majors * 1000) / CALLS, pauseMs: (pause * 1000) / CALLS };
}

function parent() {
  const alloc = Object.fromEntries(STAGES.map((s) => [s, run(s, 'alloc')]));
  const times = Object.fromEntries(STAGES.map((s) => [s, []]));
  for (let r = 0; r < ROUNDS; r++) for (const s of STAGES) times[s].push(run(s, 'time').ns);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const spread = (xs) => `${f(Math.min(...xs), 0)}-${f(Math.max(...xs), 0)}`;
  const base = { bytes: alloc.baseline.bytes, ns: median(times.baseline) };
  const lines = [
    `| stage | bytes/call | vs baseline | ns/call (median, spread over ${ROUNDS} rounds) | vs baseline | scavenges / mark-compacts / GC pause ms per 1k calls |`,
    '|---|---|---|---|---|---|',
    ...STAGES.map((s) => {
      const a = alloc[s];
      const ns = median(times[s]);
      return `| ${s === 'baseline' ? 'baseline: bare codec (fromBinary + toBinary, no limiter)' : s} | ${f(a.bytes, 0)} | ${f(a.bytes / base.bytes, 2)} | ${f(ns, 0)} (${spread(times[s])}) | ${f(ns / base.ns, 2)} | ${f(a.scavenges, 3)} / ${f(a.majors, 3)} / ${f(a.pauseMs, 2)} |`;
    }),
    '',
    `${CALLS} calls per run over 1,000 distinct requests of 1-3 descriptors (local backend, metrics, security policy); node ${process.version}. Target: reported (issue 16: allocation per call measured).`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** One stage's loop over `n` calls (async like the gRPC handler, which awaits the check). */
async function stageLoop(stage) {
  const check = await parts();
  const bytes = await requests();
  const { decode, encode, bare } = await codecs();
  const decoded = bytes.map(decode);
  const answers = [];
  for (const r of decoded) answers.push(await check(r));
  let sink = 0;
  const loops = {
    all: async (n) => {
      for (let i = 0; i < n; i++) sink += encode(await check(decode(bytes[i % 1000]))).length;
    },
    decode: async (n) => {
      for (let i = 0; i < n; i++) sink += decode(bytes[i % 1000]).descriptors.length;
    },
    check: async (n) => {
      for (let i = 0; i < n; i++) sink += (await check(decoded[i % 1000])).statuses.length;
    },
    encode: async (n) => {
      for (let i = 0; i < n; i++) sink += encode(answers[i % 1000]).length;
    },
    baseline: async (n) => {
      for (let i = 0; i < n; i++) sink += bare(bytes[i % 1000]).length;
    },
  };
  return { loop: loops[stage], sink: () => sink };
}

async function child(stage, what) {
  const { loop, sink } = await stageLoop(stage);
  await loop(Math.max(1000, CALLS / 4)); // warm-up: optimised code, every bucket made
  if (what === 'alloc') {
    globalThis.gc();
    process.stdout.write('MARK start\n');
    await loop(CALLS);
    globalThis.gc();
    process.stdout.write(`MARK end\n${sink()}\n`);
    return;
  }
  const t0 = process.hrtime.bigint();
  await loop(CALLS);
  const ns = Number(process.hrtime.bigint() - t0) / CALLS;
  process.stdout.write(`${JSON.stringify({ ns, sink: sink() })}\n`);
}
