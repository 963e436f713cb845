// The embedded engine's own cost on one core, with no agent around it: RowBinary otel_traces rows
// (the benchmark's spans, encoded once up front) inserted by chdb in batches of BATCH rows.
// Prints rows/s and CPU-µs per row (every thread of the process), the floor under any
// embedded-storage ingest rate on this machine; and CPU-µs per row once the merges those inserts
// started have ended too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTraceRequest } from '../dist/ingest/otlp/traces-wire.js';
import { insertOptionsFor, TRACES } from '../dist/storage/tables.js';
import { createEmbeddedTransport } from '../dist/storage/embedded.js';
import { migrate, schemaContext } from '../dist/storage/migrate.js';
import { traceRequestBytes } from './otlp-body.mjs';

const BATCH = Number(process.argv[2] ?? 10_000);
const TOTAL = Number(process.argv[3] ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'heimdall-floor-'));
const t = await createEmbeddedTransport({ path: dir });
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
await migrate(t, schemaContext({ retention: { traces: 90 * 86_400_000, logs: 0, metrics: 0, events: 0 } }), quiet);
const batches = [];
for (let n = 0; n < TOTAL; n += BATCH) {
  const parts = [];
  for (let k = 0; k < BATCH; k += 100) parts.push(encodeTraceRequest(traceRequestBytes(100), { resourceDefaults: {}, redaction: undefined }).data);
  batches.push(Buffer.concat(parts));
}
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (const [i, b] of batches.entries()) await t.insert(TRACES.name, b, { dedupToken: `floor-${i}`, ...insertOptionsFor(TRACES.name) });
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
// The merges those parts start run on after the last insert: wait for them (at most 30 s) and count their CPU too.
for (let i = 0; i < 300 && Number((await t.query('SELECT count() AS n FROM system.merges'))[0].n) > 0; i++) await new Promise((r) => setTimeout(r, 100));
const settled = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ rowsPerSec: TOTAL / wall, cpuMicrosPerRow: (cpu.user + cpu.system) / TOTAL, cpuMicrosPerRowMerged: (settled.user + settled.system) / TOTAL }) + '\n');
await t.close();
rmSync(dir, { recursive: true, force: true });
