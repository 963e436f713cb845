// Start of the durable queue (ack: queued) over a backlog: time from createDurableQueue().start() to
// ready, against reading the whole backlog once (what a recovery that scans every segment pays at
// least), measured in the same run. BENCH_QUEUE_BYTES (default 1 GiB), BENCH_QUEUE_DIR (default a
// temporary directory), BENCH_DIST (default ./dist: point it at another build to compare).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Registry } from 'prom-client';

const dist = resolve(process.env.BENCH_DIST ?? 'dist');
const { createHealthRegistry } = await import(join(dist, 'health/registry.js'));
const { createDurableQueue } = await import(join(dist, 'ingest/pipeline/queue.js'));
const bytes = Number(process.env.BENCH_QUEUE_BYTES ?? 2 ** 30);
const dir = process.env.BENCH_QUEUE_DIR ?? mkdtempSync(join(tmpdir(), 'heimdall-queue-start-'));
const silent = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent };
const down = () => {
  const waiting = [];
  return { write: () => new Promise((r) => waiting.push(() => r({ status: 'failed', error: new Error('down') }))), shutdown: () => waiting.splice(0).forEach((w) => w()) };
};
const open = () =>
  createDurableQueue({
    path: dir,
    writer: down(),
    storageReady: () => false,
    maxBytes: 2 * bytes,
    segmentBytes: 64 << 20,
    maxRows: 25_000,
    maxDelayMs: 1_000,
    refusedTimeoutMs: 300_000,
    deadLetterMaxBytes: 64 << 20,
    retry: { initialMs: 100, maxMs: 5_000 },
    logger: silent,
    metrics: new Registry(),
    health: createHealthRegistry(),
  });

const filler = open();
await filler.start();
const data = Buffer.alloc(256 << 10, 'a');
for (let done = 0; done < bytes; done += 64 * data.length) {
  await Promise.all(Array.from({ length: 64 }, () => filler.append([{ table: 'otel_logs', rows: 100, data }])));
}
await filler.shutdown();

const readAll = () => {
  const t0 = performance.now();
  for (const n of readdirSync(dir).filter((f) => f.endsWith('.wal'))) readFileSync(join(dir, n));
  return performance.now() - t0;
};
const start = async () => {
  const q = open();
  const t0 = performance.now();
  await q.start();
  const ms = performance.now() - t0;
  await q.shutdown();
  return ms;
};
readAll(); // warm the page cache
const runs = [];
for (let i = 0; i < 3; i++) runs.push({ read: readAll(), start: await start() });
const med = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[1];
const segments = readdirSync(dir).filter((f) => f.endsWith('.wal'));
const backlog = segments.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
console.log(`| backlog | read whole backlog (ms) | queue start (ms) | start / read |\n|---|---|---|---|\n| ${(backlog / 2 ** 20).toFixed(0)} MiB in ${segments.length} segments, page cache warm | ${med('read').toFixed(0)} | ${med('start').toFixed(0)} | ${(med('start') / med('read')).toFixed(3)} |`);
if (!process.env.BENCH_QUEUE_DIR) rmSync(dir, { recursive: true, force: true });
