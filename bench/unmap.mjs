// Unmap benchmark: what unmapping the embedded engine's code (telemetry/memory-native.ts, run by the
// agent once it is quiet) gives back and what it costs the next query. An agent fills a data
// directory with 60k spans (OTLP/gRPC, 100 spans a request) and stops; then the engine alone (chdb,
// no agent) opens that directory in a process pinned to core 0 and runs two of the agent's kinds of
// query: a trace search (the newest 20 spans of one service) and a summary (per service: spans,
// errors, p99 duration). Baseline: each query warm (median of 10 after 3 warm-ups). Then, 5 rounds:
// unmap the library (the agent's release, timed), then time the first and second run of each query.
// Reports the library's file pages in memory before and after, and the process RSS.
// Needs dist/native/memory.node (npm run build, with a C compiler).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentConfig, mixedLoad, startAgent, stop } from './footprint.mjs';
import { f } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const ROUNDS = 5;
const QUERIES = {
  search: "SELECT TraceId, SpanId, SpanName, Duration FROM otel_traces WHERE ServiceName = 'bench-service' ORDER BY Timestamp DESC LIMIT 20",
  summary: "SELECT ServiceName, count() AS spans, countIf(StatusCode = 'Error') AS errors, quantile(0.99)(Duration) AS p99 FROM otel_traces GROUP BY ServiceName ORDER BY spans DESC",
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The engine-alone side, in its own pinned process: prints one JSON line. */
async function child(dataDir) {
  const { createNativeRelease } = await import('../dist/telemetry/memory-native.js');
  const chdb = await import('chdb');
  const session = new chdb.Session(dataDir);
  const time = async (sql) => {
    const t0 = performance.now();
    await session.queryAsync(sql, { format: 'JSONEachRow' });
    return performance.now() - t0;
  };
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;
  const out = { warm: {}, first: {}, second: {}, releaseMs: [], before: [], after: [], rssBefore: [], rssAfter: [] };
  for (const [name, sql] of Object.entries(QUERIES)) {
    for (let i = 0; i < 3; i++) await time(sql);
    const runs = [];
    for (let i = 0; i < 10; i++) runs.push(await time(sql));
    out.warm[name] = median(runs);
    out.first[name] = [];
    out.second[name] = [];
  }
  const release = createNativeRelease({ logger: { info() {}, warn: (o, m) => console.error(m, o) }, unmap: ['libchdb.so'], growthBytes: 0 });
  for (let r = 0; r < ROUNDS; r++) {
    out.rssBefore.push(rss());
    const t0 = performance.now();
    const { libraryResidentBytes } = release();
    out.releaseMs.push(performance.now() - t0);
    out.before.push(libraryResidentBytes.before / 2 ** 20);
    out.after.push(libraryResidentBytes.after / 2 ** 20);
    out.rssAfter.push(rss());
    for (const [name, sql] of Object.entries(QUERIES)) {
      out.first[name].push(await time(sql));
      out.second[name].push(await time(sql));
    }
  }
  session.close();
  console.log(JSON.stringify(out));
}

if (process.argv[2] === '--child') {
  await child(process.argv[3]);
} else {
  if (!existsSync(join(ROOT, 'dist', 'native', 'memory.node'))) throw new Error('dist/native/memory.node is missing: npm run build, with a C compiler (cc)');
  const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-unmap-'));
  try {
    const agent = await startAgent(agentConfig(work));
    const load = await mixedLoad({ grpc: agent.grpc, admin: agent.admin, rate: 60, ms: 10_000, queryEveryMs: 60_000 });
    await stop(agent.child);
    const out = JSON.parse(execFileSync('taskset', ['-c', '0', process.execPath, import.meta.filename, '--child', join(work, 'data')], { encoding: 'utf8' }).trim().split('\n').pop());
    const rows = Object.keys(QUERIES).map((name) => `| ${name} | ${f(out.warm[name], 1)} ms | ${f(median(out.first[name]), 1)} ms (${out.first[name].map((x) => f(x, 0)).join(', ')}) | ${f(median(out.second[name]), 1)} ms | ${f(median(out.first[name]) / out.warm[name], 1)}x |`);
    console.log(
      [
        `Unmapping of the embedded engine's code (chdb ${execFileSync(process.execPath, ['-p', "require('chdb/package.json').version"], { cwd: ROOT, encoding: 'utf8' }).trim()}, the engine alone pinned to core 0, ${load.ok * 100} spans stored; ${ROUNDS} rounds), node ${process.version}:`,
        '',
        '| | before | after | |',
        '|---|---|---|---|',
        `| libchdb.so file pages in memory (median) | ${f(median(out.before), 0)} MiB (first round ${f(out.before[0], 0)}) | ${f(median(out.after), 0)} MiB | |`,
        `| process RSS (median) | ${f(median(out.rssBefore), 0)} MiB (first round ${f(out.rssBefore[0], 0)}) | ${f(median(out.rssAfter), 0)} MiB | |`,
        `| the release itself (median: smaps read twice, unmapping, malloc_trim) | | ${f(median(out.releaseMs), 1)} ms | |`,
        '',
        '| query | warm (median of 10; the baseline) | first run after the unmapping (median; each round) | second run after it | first / warm |',
        '|---|---|---|---|---|',
        ...rows,
      ].join('\n'),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
