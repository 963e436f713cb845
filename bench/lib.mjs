// Shared helpers for the benchmarks: processes pinned to a core, /proc readings, h2load, percentiles.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';

export const CLK_TCK = 100;

/** Starts `node args` pinned to `core`, resolving when a stdout line satisfies `ready` (returns it parsed). */
export function startPinned(core, args, ready, env = {}) {
  const child = spawn('taskset', ['-c', String(core), process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let buf = '';
  const lines = [];
  const found = new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let parsed;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        lines.push(parsed);
        if (ready(parsed)) resolve(parsed);
      }
    });
  });
  return { child, found, lines };
}

/** CPU seconds (user + system) used so far by a process. */
export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size now and at peak, in MiB. */
export function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** Runs h2load pinned to `core` and returns requests/s and the success count. */
export function h2load(core, args) {
  const out = execFileSync('taskset', ['-c', String(core), 'h2load', ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const succeeded = Number(/requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(out)?.[1] ?? NaN);
  const mean = /time for request:\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1];
  return { rps, succeeded, meanRequestTime: mean, raw: out };
}

/** p-th percentile (0-100) of sorted numbers. */
export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Sequential GETs over one keep-alive connection; returns per-request latencies in ms, sorted. */
export async function sequentialGets(url, count) {
  const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
  const times = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve, reject) => {
      const req = request(url, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  agent.destroy();
  return times.sort((a, b) => a - b);
}

/** Formats a number with fixed decimals. */
export const f = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : String(n));

/** Node's own threads besides the JavaScript main thread (GC and compiler workers, libuv pool, ...), and jemalloc's background thread when it is preloaded. */
const NODE_THREADS = new Set(['V8Worker', 'libuv-worker', 'DelayedTaskSche', 'SignalInspector', 'jemalloc_bg_thd']);

/**
 * CPU seconds used so far by a process, split into its JavaScript main thread (`js`), Node's other
 * threads (`node`: GC, libuv pool) and every other thread (`engine`: the embedded ClickHouse
 * engine's, some of which inherit the name MainThread, hence the split by thread id); `byName` splits
 * the seconds of every thread but the main one by thread name (MergeMutate: merges).
 */
export function threadCpuSeconds(pid) {
  const out = { js: 0, node: 0, engine: 0, byName: {} };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const kind = tid === String(pid) ? 'js' : NODE_THREADS.has(name) ? 'node' : 'engine';
    const seconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    out[kind] += seconds;
    if (kind !== 'js') out.byName[name] = (out.byName[name] ?? 0) + seconds;
  }
  return out;
}
