// Bytes per stored span: a realistic trace set (trace-set.mjs) sent over OTLP/HTTP to one agent with
// embedded storage (ack: stored), then, with the agent stopped, otel_traces merged into one part per
// day (OPTIMIZE FINAL) and measured from system.parts / system.columns. The same rows are copied
// into a table made by migration 0002's DDL (the Collector exporter's codecs) and measured the same
// way: before / after the codec migration, one run, same data. Compared with Jaeger-ClickHouse's
// published 76 B/span.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedTransport } from '../dist/storage/embedded.js';
import { migration0002 } from '../dist/storage/migrations/0002-otel-traces.js';
import { schemaContext } from '../dist/storage/migrate.js';
import { f, startPinned } from './lib.mjs';
import { traceSet } from './trace-set.mjs';

const TRACES = Number(process.env.BENCH_TRACES ?? 4000);
const JAEGER_CLICKHOUSE_BYTES_PER_SPAN = 76;
const work = mkdtempSync(join(tmpdir(), 'heimdall-bench-span-bytes-'));
const dataDir = join(work, 'data');

const { bodies, spans } = traceSet({ traces: TRACES });
writeFileSync(
  join(work, 'heimdall.yaml'),
  [
    'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" } }',
    `storage: { embedded: { path: "${dataDir}" } }`,
    `ingest: { queue: { path: "${join(work, 'queue')}" } }`,
    'shutdown: { drain: 0s }',
  ].join('\n'),
);
const agent = startPinned(0, [join(import.meta.dirname, '..', 'dist', 'bundle', 'main.js'), 'run', '--config', join(work, 'heimdall.yaml')], (l) => l.msg === 'Heimdall started');
await agent.found;
const port = agent.lines.find((l) => l.component === 'otlp_http' && l.port).port;
let next = 0;
const send = async () => {
  while (next < bodies.length) {
    const body = bodies[next++];
    const res = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
    if (res.status !== 200) throw new Error(`OTLP/HTTP answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  }
};
await Promise.all(Array.from({ length: 4 }, send));
agent.child.kill('SIGTERM');
await new Promise((res) => agent.child.once('exit', res));

const t = await createEmbeddedTransport({ path: dataDir });
/** Merges `table` and returns its rows, bytes on disk (every file of its parts) and compressed bytes per column. */
async function measure(table) {
  await t.command(`OPTIMIZE TABLE ${table} FINAL`);
  const [parts] = await t.query(`SELECT sum(rows) AS rows, sum(bytes_on_disk) AS disk, count() AS parts FROM system.parts WHERE active AND database = currentDatabase() AND table = {t:String}`, { t: table });
  const columns = await t.query(`SELECT name, type, compression_codec AS codec, data_compressed_bytes AS bytes, data_uncompressed_bytes AS raw FROM system.columns WHERE database = currentDatabase() AND table = {t:String} AND default_kind != 'ALIAS'`, { t: table });
  return { rows: Number(parts.rows), disk: Number(parts.disk), parts: Number(parts.parts), columns: new Map(columns.map((c) => [c.name, { ...c, bytes: Number(c.bytes), raw: Number(c.raw) }])) };
}
const after = await measure('otel_traces');
const lookup = await measure('otel_traces_trace_id_ts');
const ddl = migration0002.statements(schemaContext({ retention: { traces: 0, logs: 0, metrics: 0, events: 0 } }))[0].replace('CREATE TABLE IF NOT EXISTS otel_traces ', 'CREATE TABLE otel_traces_collector_codecs ');
await t.command(ddl);
await t.command('INSERT INTO otel_traces_collector_codecs SELECT * FROM otel_traces');
const before = await measure('otel_traces_collector_codecs');
await t.close();
rmSync(work, { recursive: true, force: true });

const per = (bytes, rows) => bytes / rows;
const columnSum = (m) => [...m.columns.values()].reduce((n, c) => n + c.bytes, 0);
const names = [...after.columns.keys()].sort((a, b) => before.columns.get(b).bytes - before.columns.get(a).bytes);
const lines = [
  `Trace set: ${TRACES} traces, ${spans} spans (${f(spans / TRACES, 1)} per trace), 8 services x 2 pods, ${bodies.length} OTLP/HTTP requests, ${f(bodies.reduce((n, b) => n + b.length, 0) / spans, 0)} B/span on the wire; stored ${after.rows} spans (ack: stored).`,
  '',
  '| otel_traces, merged (OPTIMIZE FINAL) | Collector codecs (migration 0002) | tuned codecs (current schema) | target |',
  '|---|---|---|---|',
  `| bytes on disk per span (all files of the parts: columns, marks, primary and skip indexes) | ${f(per(before.disk, before.rows), 1)} B | ${f(per(after.disk, after.rows), 1)} B | Jaeger-ClickHouse ${JAEGER_CLICKHOUSE_BYTES_PER_SPAN} B |`,
  `| compressed column data per span | ${f(per(columnSum(before), before.rows), 1)} B | ${f(per(columnSum(after), after.rows), 1)} B | |`,
  `| with the trace id lookup table (otel_traces_trace_id_ts, ${f(per(lookup.disk, after.rows), 1)} B/span on disk) | ${f(per(before.disk + lookup.disk, before.rows), 1)} B | ${f(per(after.disk + lookup.disk, after.rows), 1)} B | |`,
  '',
  '| column | uncompressed B/span | Collector codec | B/span | tuned codec | B/span |',
  '|---|---|---|---|---|---|',
  ...names.map((n) => {
    const b = before.columns.get(n);
    const a = after.columns.get(n);
    return `| ${n} | ${f(per(a.raw, after.rows), 1)} | ${b.codec || '(default)'} | ${f(per(b.bytes, before.rows), 1)} | ${a.codec || '(default)'} | ${f(per(a.bytes, after.rows), 1)} |`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);
