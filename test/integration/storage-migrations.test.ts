/** Migrations after the first release, applied to a data directory an earlier Heimdall made. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracesToRows } from '../../src/ingest/otlp/traces.js';
import { encodeTables } from '../../src/ingest/pipeline/formats.js';
import { createEmbeddedTransport } from '../../src/storage/embedded.js';
import { migrate, schemaContext } from '../../src/storage/migrate.js';
import { EMBEDDED_MERGE_SELECTOR_BASE } from '../../src/storage/migrations/0008-embedded-merges.js';
import { ATTRIBUTE_ZSTD_LEVEL } from '../../src/storage/migrations/0009-trace-attribute-codecs.js';
import { MIGRATIONS } from '../../src/storage/migrations/index.js';
import { insertOptionsFor, LOGS, METRIC_TABLES, TRACE_ID_TS, TRACES } from '../../src/storage/tables.js';
import type { StorageTransport } from '../../src/storage/transport.js';
import { traceRequest } from '../support/otlp-requests.js';
import { silentLogger, tempDir } from '../support/temp.js';

const retention = { traces: 90 * 86_400_000, logs: 0, metrics: 0, events: 0 };
const embedded = schemaContext({ retention, embedded: true });
const logger = silentLogger();
const dir = tempDir('heimdall-migrations-');
let t: StorageTransport;

/** Every otel_traces column (ALIAS ones aside) with its type and codec. */
const columns = () => t.query<{ name: string; type: string; codec: string }>("SELECT name, type, compression_codec AS codec FROM system.columns WHERE database = currentDatabase() AND table = 'otel_traces' AND default_kind != 'ALIAS' ORDER BY position");
/** Every span as JSON text, in a stable order. */
const spans = async () => (await t.query<{ s: string }>('SELECT toJSONString(tuple(*)) AS s FROM otel_traces ORDER BY SpanId')).map((r) => r.s);
const mergeBase = async (table: string) => (await t.query<{ e: string }>('SELECT engine_full AS e FROM system.tables WHERE database = currentDatabase() AND name = {n:String}', { n: table }))[0]?.e.match(/merge_selector_base = (\d+)/)?.[1];

beforeAll(async () => {
  // A data directory as Heimdall left it with migrations 1-7, holding spans.
  const old = await createEmbeddedTransport({ path: dir.path });
  await migrate(old, embedded, logger, MIGRATIONS.filter((m) => m.version <= 7));
  for (const part of encodeTables(tracesToRows(traceRequest('migrated', 50)))) await old.insert(part.table, part.data, { dedupToken: 'old', ...insertOptionsFor(part.table) });
  await old.close();
  t = await createEmbeddedTransport({ path: dir.path });
}, 120_000);
afterAll(async () => {
  await t.close();
  dir.cleanup();
});

describe('migrations 0008 and 0009 on an existing data directory', () => {
  it('apply once; otel_traces keeps its spans, column names and types; the attribute maps get zstd level 6, other codecs stay', async () => {
    const before = await columns();
    const stored = await spans();
    expect(stored).toHaveLength(50);
    const report = await migrate(t, embedded, logger);
    expect(report.applied).toEqual([8, 9]);
    expect((await migrate(t, embedded, logger)).applied).toEqual([]);
    const after = await columns();
    expect(after.map((c) => [c.name, c.type])).toEqual(before.map((c) => [c.name, c.type]));
    const tuned = new Set(['ResourceAttributes', 'SpanAttributes']);
    for (const c of after) expect(c.codec).toBe(tuned.has(c.name) ? `CODEC(ZSTD(${ATTRIBUTE_ZSTD_LEVEL}))` : before.find((b) => b.name === c.name)?.codec);
    // Old parts are rewritten with the new codec at their next merge, spans intact.
    await t.command(`OPTIMIZE TABLE ${TRACES.name} FINAL`);
    expect(await spans()).toEqual(stored);
    const [part] = await t.query<{ n: string }>("SELECT count() AS n FROM system.parts WHERE active AND database = currentDatabase() AND table = 'otel_traces'");
    expect(Number(part?.n)).toBe(1);
  }, 120_000);

  it('give the embedded engine wider merges on the OpenTelemetry tables', async () => {
    await migrate(t, embedded, logger);
    for (const table of [TRACES.name, TRACE_ID_TS.name, LOGS.name, ...Object.values(METRIC_TABLES).map((m) => m.name)]) expect(await mergeBase(table)).toBe(String(EMBEDDED_MERGE_SELECTOR_BASE));
    // New spans go into the migrated table as before.
    for (const part of encodeTables(tracesToRows(traceRequest('after-migration', 5)))) await t.insert(part.table, part.data, { dedupToken: 'new', ...insertOptionsFor(part.table) });
    expect(await t.query("SELECT 1 FROM otel_traces WHERE ServiceName = 'after-migration'")).toHaveLength(5);
  }, 60_000);
});
