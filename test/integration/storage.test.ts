/**
 * One suite, two transports: the embedded engine (chdb) and the server transport
 * (@clickhouse/client over HTTP) against a ClickHouse HTTP endpoint backed by chdb.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedTransport } from '../../src/storage/embedded.js';
import { StorageError } from '../../src/storage/errors.js';
import { migrate, schemaContext } from '../../src/storage/migrate.js';
import { MIGRATIONS } from '../../src/storage/migrations/index.js';
import { createServerTransport } from '../../src/storage/server.js';
import { encodeRowBinary } from '../../src/storage/rowbinary.js';
import { TRACES } from '../../src/storage/tables.js';
import type { StorageTransport } from '../../src/storage/transport.js';
import { startClickHouseHttp, type ClickHouseHttp } from '../support/clickhouse-http.js';
import { silentLogger, tempDir } from '../support/temp.js';

const DAY = 86_400_000;

/** A ClickHouse DateTime64 text for now plus offsetMs (rows must be inside retention, or TTL drops them). */
function at(offsetMs = 0): string {
  return new Date(Date.now() + offsetMs).toISOString().replace('T', ' ').replace('Z', '');
}
const retention = { traces: 90 * DAY, logs: 30 * DAY, metrics: 90 * DAY, events: 90 * DAY };
const OTEL_TABLES = [
  'otel_traces',
  'otel_traces_trace_id_ts',
  'otel_traces_trace_id_ts_mv',
  'otel_logs',
  'otel_metrics_gauge',
  'otel_metrics_sum',
  'otel_metrics_histogram',
  'otel_metrics_exp_histogram',
  'otel_metrics_summary',
];

interface Fixture {
  transport: StorageTransport;
  endpoint?: ClickHouseHttp;
  cleanup(): Promise<void>;
}

const transports: Array<[string, () => Promise<Fixture>]> = [
  [
    'embedded (chdb)',
    async () => {
      const dir = tempDir();
      const transport = await createEmbeddedTransport({ path: dir.path });
      return { transport, cleanup: async () => (await transport.close(), dir.cleanup()) };
    },
  ],
  [
    'server (@clickhouse/client over HTTP)',
    async () => {
      const dir = tempDir();
      const endpoint = await startClickHouseHttp(dir.path, { user: 'heimdall', password: 'pw' });
      const transport = createServerTransport({ url: endpoint.url, username: 'heimdall', password: 'pw', database: 'default', requestTimeout: 5_000, maxOpenConnections: 4 });
      return { transport, endpoint, cleanup: async () => (await transport.close(), await endpoint.close(), dir.cleanup()) };
    },
  ],
];

describe.each(transports)('storage transport: %s', (_name, make) => {
  let fx: Fixture;
  const logger = silentLogger();
  beforeAll(async () => {
    fx = await make();
    await fx.transport.ping();
  });
  afterAll(async () => fx.cleanup());

  it('applies every migration once and records it', async () => {
    const ctx = schemaContext({ retention });
    const first = await migrate(fx.transport, ctx, logger);
    expect(first.applied).toEqual(MIGRATIONS.map((m) => m.version));
    const second = await migrate(fx.transport, ctx, logger);
    expect(second).toEqual({ applied: [], retentionUpdated: [] });
    const recorded = await fx.transport.query<{ version: number }>('SELECT version FROM heimdall_schema_migrations ORDER BY version');
    expect(recorded.map((r) => Number(r.version))).toEqual(MIGRATIONS.map((m) => m.version));
    const tables = await fx.transport.query<{ name: string }>('SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name');
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(OTEL_TABLES));
  });

  it('queryText returns the engine\'s JSON lines as they are, parameters bound', async () => {
    const text = await fx.transport.queryText('SELECT {x:String} AS x, toUInt8(number) AS y, number AS z FROM numbers(2)', { x: 'a"b' });
    expect(text).toBe('{"x":"a\\"b","y":0,"z":"0"}\n{"x":"a\\"b","y":1,"z":"1"}\n');
  });

  it('creates the Collector exporter layout that Grafana reads', async () => {
    const columns = await fx.transport.query<{ table: string; name: string; type: string; compression_codec: string }>(
      'SELECT table, name, type, compression_codec FROM system.columns WHERE database = currentDatabase() AND table IN {tables:Array(String)}',
      { tables: OTEL_TABLES },
    );
    const type = (table: string, name: string) => columns.find((c) => c.table === table && c.name === name)?.type;
    expect(type('otel_traces', 'Timestamp')).toBe('DateTime64(9)');
    expect(type('otel_traces', 'SpanAttributes')).toBe('Map(LowCardinality(String), String)');
    expect(type('otel_traces', 'Duration')).toBe('UInt64');
    expect(type('otel_traces', 'Events.Timestamp')).toBe('Array(DateTime64(9))');
    expect(type('otel_traces', 'Links.TraceState')).toBe('Array(String)');
    expect(type('otel_logs', 'TimestampTime')).toBe('DateTime');
    expect(type('otel_logs', 'SeverityNumber')).toBe('UInt8');
    expect(type('otel_metrics_sum', 'IsMonotonic')).toBe('Bool');
    expect(type('otel_metrics_histogram', 'BucketCounts')).toBe('Array(UInt64)');
    expect(type('otel_metrics_exp_histogram', 'PositiveOffset')).toBe('Int32');
    expect(type('otel_metrics_summary', 'ValueAtQuantiles.Quantile')).toBe('Array(Float64)');
    expect(columns.find((c) => c.table === 'otel_traces' && c.name === 'Timestamp')?.compression_codec).toBe('CODEC(Delta(8), ZSTD(1))');
    const [traces] = await fx.transport.query<{ sorting_key: string; partition_key: string; engine_full: string }>(
      "SELECT sorting_key, partition_key, engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'otel_traces'",
    );
    expect(traces?.sorting_key).toBe('ServiceName, SpanName, toDateTime(Timestamp), Timestamp');
    expect(traces?.partition_key).toBe('toDate(Timestamp)');
    expect(traces?.engine_full).toContain('TTL toDateTime(Timestamp) + toIntervalSecond(7776000)');
    const indexes = await fx.transport.query<{ name: string; type: string }>("SELECT name, type FROM system.data_skipping_indices WHERE database = currentDatabase() AND table = 'otel_traces'");
    expect(indexes).toEqual(expect.arrayContaining([{ name: 'idx_trace_id', type: 'bloom_filter' }, { name: 'idx_duration', type: 'minmax' }, { name: 'idx_lower_span_name', type: 'tokenbf_v1' }]));
  });

  it('feeds the trace id lookup table through the materialized view', async () => {
    const start = at(-60_000).slice(0, 19);
    const end = at(-52_000).slice(0, 19);
    await fx.transport.insert('otel_traces', [
      { Timestamp: `${start}.000000000`, TraceId: 'aaaa', SpanId: '1', ServiceName: 'svc', SpanName: 'a', Duration: 5 },
      { Timestamp: `${end}.000000000`, TraceId: 'aaaa', SpanId: '2', ServiceName: 'svc', SpanName: 'b', Duration: 5 },
    ]);
    const rows = await fx.transport.query<{ Start: string; End: string }>(
      'SELECT min(Start) AS Start, max(End) AS End FROM otel_traces_trace_id_ts WHERE TraceId = {id:String}',
      { id: 'aaaa' },
    );
    expect(rows).toEqual([{ Start: start, End: end }]);
  });

  it('takes user input only as parameters: injection attempts match literally', async () => {
    const nasty = ["x' OR '1'='1", 'a\\', "'); DROP TABLE otel_logs; --", '{id:String}', 'tab\there\nnewline', 'ünïcødé 🚀'];
    await fx.transport.insert('otel_logs', nasty.map((body, i) => ({ Timestamp: at(-i * 1000), ServiceName: 'inj', Body: body })));
    for (const body of nasty) {
      const rows = await fx.transport.query<{ Body: string }>('SELECT Body FROM otel_logs WHERE ServiceName = {svc:String} AND Body = {body:String}', { svc: 'inj', body });
      expect(rows).toEqual([{ Body: body }]);
    }
    const [count] = await fx.transport.query<{ c: string }>("SELECT count() AS c FROM otel_logs WHERE ServiceName = 'inj'");
    expect(count?.c).toBe(String(nasty.length));
  });

  it('stores a retried insert with the same dedup token once', async () => {
    const rows = [{ Timestamp: at(), ServiceName: 'dedup', Body: 'once' }];
    await fx.transport.insert('otel_logs', rows, { dedupToken: 'batch-1' });
    await fx.transport.insert('otel_logs', rows, { dedupToken: 'batch-1' });
    await fx.transport.insert('otel_logs', rows, { dedupToken: 'batch-2' });
    const [count] = await fx.transport.query<{ c: string }>("SELECT count() AS c FROM otel_logs WHERE ServiceName = 'dedup'");
    expect(count?.c).toBe('2');
  });

  it('accepts pre-encoded JSONEachRow bytes', async () => {
    const t = at();
    await fx.transport.insert('otel_logs', Buffer.from(`{"Timestamp":"${t}","ServiceName":"bytes","Body":"b1"}\n{"Timestamp":"${t}","ServiceName":"bytes","Body":"b2"}\n`));
    const rows = await fx.transport.query<{ Body: string }>("SELECT Body FROM otel_logs WHERE ServiceName = 'bytes' ORDER BY Body");
    expect(rows.map((r) => r.Body)).toEqual(['b1', 'b2']);
  });

  it('inserts RowBinary rows into otel_traces, every column intact, a retry with the same token once', async () => {
    const ms = Date.now() - 5_000;
    const ts = `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1e6 + 123).padStart(9, '0')}`;
    const row = {
      Timestamp: ts,
      TraceId: '0af7651916cd43dd8448eb211c80319c',
      SpanId: 'b7ad6b7169203331',
      ParentSpanId: '',
      TraceState: 'k=v',
      SpanName: 'GET /ünï',
      SpanKind: 'Server',
      ServiceName: 'rowbinary',
      ResourceAttributes: { 'host.name': 'h', 'service.name': 'rowbinary' },
      ScopeName: 'lib',
      ScopeVersion: '1.0',
      SpanAttributes: { "quote'\\": 'tab\there', z: '🚀' },
      Duration: '18446744073709551615',
      StatusCode: 'Error',
      StatusMessage: 'boom',
      'Events.Timestamp': [ts, '0000000000.000000000'],
      'Events.Name': ['e1', 'e2'],
      'Events.Attributes': [{ a: '1' }, {}],
      'Links.TraceId': ['5b8efff798038103d269b633813fc60c'],
      'Links.SpanId': ['eee19b7ec3c1b174'],
      'Links.TraceState': [''],
      'Links.Attributes': [{ l: 'x' }],
    };
    const data = encodeRowBinary([row], TRACES.columns);
    const format = { format: 'RowBinary' as const, columns: TRACES.columns.map((c) => c.name) };
    await fx.transport.insert('otel_traces', data, { ...format, dedupToken: 'rb-1' });
    await fx.transport.insert('otel_traces', data, { ...format, dedupToken: 'rb-1' });
    const columns = TRACES.columns.map((c) =>
      c.type === 'DateTime64(9)' ? `toString(toUnixTimestamp64Nano(${c.name})) AS ${c.name}` : c.type === 'Array(DateTime64(9))' ? `arrayMap(t -> toString(toUnixTimestamp64Nano(t)), \`${c.name}\`) AS \`${c.name}\`` : `\`${c.name}\``,
    );
    const rows = await fx.transport.query<Record<string, unknown>>(`SELECT ${columns.join(', ')} FROM otel_traces WHERE ServiceName = 'rowbinary'`);
    const nanos = (t: string) => t.replace('.', '').replace(/^0+(?=\d)/, '');
    expect(rows).toEqual([{ ...row, Timestamp: nanos(ts), 'Events.Timestamp': [nanos(ts), '0'] }]);
  });

  it('leaves deferred skip indexes to the first merge, which builds them', async () => {
    await fx.transport.command('CREATE TABLE deferred_idx (k UInt32, m Map(String, String), INDEX idx_m mapKeys(m) TYPE bloom_filter(0.01) GRANULARITY 1, INDEX idx_k k TYPE minmax GRANULARITY 1) ENGINE = MergeTree ORDER BY k');
    const rows = Array.from({ length: 1000 }, (_, k) => ({ k, m: { [`key-${k}`]: 'v' } }));
    const indexBytes = async () =>
      (await fx.transport.query<{ b: string }>("SELECT secondary_indices_uncompressed_bytes AS b FROM system.parts WHERE database = currentDatabase() AND table = 'deferred_idx' AND active ORDER BY min_block_number")).map((r) => Number(r.b));
    await fx.transport.insert('deferred_idx', rows, { deferredIndexes: ['idx_m'] });
    await fx.transport.insert('deferred_idx', rows);
    const [deferred = 0, built = 0] = await indexBytes();
    // The first part has only the minmax index; the second has the bloom filter too.
    expect(deferred).toBeLessThan(built);
    await fx.transport.command('OPTIMIZE TABLE deferred_idx FINAL');
    const [merged = 0] = await indexBytes();
    // The merged part has the bloom filter again (its size is per granule, like the second part's).
    expect(merged).toBeGreaterThan(deferred);
    expect(merged).toBeGreaterThanOrEqual(built);
    await fx.transport.command('DROP TABLE deferred_idx');
  });

  it('brings TTL in line with configured retention, and removes it for 0', async () => {
    const changed = await migrate(fx.transport, schemaContext({ retention: { ...retention, logs: 7 * DAY } }), logger);
    expect(changed).toEqual({ applied: [], retentionUpdated: ['otel_logs'] });
    const engineOf = async (name: string) =>
      (await fx.transport.query<{ engine_full: string }>('SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {name:String}', { name }))[0]?.engine_full ?? '';
    expect(await engineOf('otel_logs')).toContain('toIntervalSecond(604800)');
    const removed = await migrate(fx.transport, schemaContext({ retention: { ...retention, logs: 0 } }), logger);
    expect(removed.retentionUpdated).toEqual(['otel_logs']);
    expect(await engineOf('otel_logs')).not.toMatch(/\bTTL\b/);
  });

  it('reports SQL errors as non-retryable StorageError with the ClickHouse code', async () => {
    const err = await fx.transport.query('SELEC 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).retryable).toBe(false);
    expect((err as StorageError).code).toBe(62);
  });

  it('applies per-query settings: the time limit and read limits end the query with their ClickHouse codes', async () => {
    // A million rows: no engine reads them in a millisecond, and 1,000 rows is far under them.
    const heavy = 'SELECT count() AS n, uniqExact(toString(number)) AS u FROM numbers({n:UInt64})';
    const timeLimit = await fx.transport.query(heavy, { n: 1_000_000 }, { max_execution_time: 0.001, timeout_overflow_mode: 'throw' }).catch((e: unknown) => e);
    expect((timeLimit as StorageError).code).toBe(159); // TIMEOUT_EXCEEDED
    const rowLimit = await fx.transport.query(heavy, { n: 1_000_000 }, { max_rows_to_read: 1_000, read_overflow_mode: 'throw' }).catch((e: unknown) => e);
    expect((rowLimit as StorageError).code).toBe(158); // TOO_MANY_ROWS
    const byteLimit = await fx.transport.queryText(heavy, { n: 1_000_000 }, { max_bytes_to_read: 1_000, read_overflow_mode: 'throw' }).catch((e: unknown) => e);
    expect((byteLimit as StorageError).code).toBe(307); // TOO_MANY_BYTES
    // Under the limits the same query answers; settings join a statement's own SETTINGS clause.
    expect(await fx.transport.query<{ n: string }>('SELECT count() AS n FROM numbers({n:UInt64}) SETTINGS max_threads = 1', { n: 500 }, { max_rows_to_read: 1_000, read_overflow_mode: 'throw' })).toEqual([{ n: '500' }]);
  });
});

describe('server transport outages', () => {
  it('fails pings with a retryable error while the server is down, and recovers', async () => {
    const dir = tempDir();
    const endpoint = await startClickHouseHttp(dir.path);
    const transport = createServerTransport({ url: endpoint.url, username: 'default', password: '', database: 'default', requestTimeout: 2_000, maxOpenConnections: 2 });
    try {
      await transport.ping();
      await endpoint.down();
      const err = await transport.ping().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).retryable).toBe(true);
      await endpoint.up();
      await transport.ping();
      expect(await transport.query<{ x: number }>('SELECT {x:UInt8} AS x', { x: 7 })).toEqual([{ x: 7 }]);
    } finally {
      await transport.close();
      await endpoint.close();
      dir.cleanup();
    }
  });
});

describe('server transport insert compression', () => {
  it('sends insert bodies as zstd by default, or gzip, or plain, and every one is stored', async () => {
    const dir = tempDir();
    const endpoint = await startClickHouseHttp(dir.path);
    const open = (insertCompression?: 'zstd' | 'gzip' | 'none') => createServerTransport({ url: endpoint.url, username: 'default', password: '', database: 'default', requestTimeout: 5_000, maxOpenConnections: 2, insertCompression });
    const reader = open();
    try {
      await reader.command('CREATE TABLE codec_t (k UInt64, s String) ENGINE = MergeTree ORDER BY k');
      const cases = [[undefined, 'zstd'], ['zstd', 'zstd'], ['gzip', 'gzip'], ['none', undefined]] as const;
      for (const [i, [codec, sent]] of cases.entries()) {
        const transport = open(codec);
        const rows = Array.from({ length: 2000 }, (_, n) => ({ k: String(i * 10_000 + n), s: `row ${n} ${'x'.repeat(n % 50)}` }));
        try {
          await transport.insert('codec_t', rows.slice(0, 1000));
          await transport.insert('codec_t', encodeRowBinary(rows.slice(1000), [{ name: 'k', type: 'UInt64' }, { name: 's', type: 'String' }]), { format: 'RowBinary', columns: ['k', 's'] });
        } finally {
          await transport.close();
        }
        const inserts = endpoint.log.filter((l) => l.sql.startsWith('INSERT INTO codec_t')).slice(-2);
        expect(inserts.map((l) => l.encoding)).toEqual([sent, sent]);
        const stored = await reader.query<{ k: string; s: string }>('SELECT k, s FROM codec_t WHERE k >= {lo:UInt64} AND k < {hi:UInt64} ORDER BY k', { lo: i * 10_000, hi: (i + 1) * 10_000 });
        expect(stored).toEqual(rows);
      }
    } finally {
      await reader.close();
      await endpoint.close();
      dir.cleanup();
    }
  });
});

describe('schema context', () => {
  it('renders ON CLUSTER and the replicated engines when a cluster is named', () => {
    const ctx = schemaContext({ cluster: 'prod', retention });
    const sql = MIGRATIONS.flatMap((m) => m.statements(ctx)).join('\n');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS otel_traces ON CLUSTER "prod"');
    expect(sql).toContain('ENGINE = ReplicatedMergeTree()');
    expect(sql).toContain('ENGINE = ReplicatedAggregatingMergeTree()');
    expect(sql).toContain('CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv ON CLUSTER "prod"');
    const custom = schemaContext({ cluster: 'c', engine: { name: 'ReplicatedMergeTree', params: "'/ch/{shard}/{table}', '{replica}'" }, retention });
    expect(custom.engine).toBe("ReplicatedMergeTree('/ch/{shard}/{table}', '{replica}')");
  });
});

describe('embedded engine settings', () => {
  it('sizes the engine caches for a sidecar (not ClickHouse server defaults of 5 GiB each)', async () => {
    const dir = tempDir();
    const transport = await createEmbeddedTransport({ path: dir.path });
    try {
      const rows = await transport.query<{ name: string; value: string }>("SELECT name, value FROM system.server_settings WHERE name IN ('mark_cache_size', 'index_mark_cache_size', 'primary_index_cache_size', 'query_condition_cache_size', 'uncompressed_cache_size') ORDER BY name");
      expect(Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]))).toEqual({
        index_mark_cache_size: 8 * 2 ** 20,
        mark_cache_size: 32 * 2 ** 20,
        primary_index_cache_size: 16 * 2 ** 20,
        query_condition_cache_size: 8 * 2 ** 20,
        uncompressed_cache_size: 0,
      });
    } finally {
      await transport.close();
      dir.cleanup();
    }
  });

  it('bounds the engine threads for a sidecar: 2 for part cleanup and part loading, 16 idle threads kept (not 128, 64 and 1,000)', async () => {
    const dir = tempDir();
    const transport = await createEmbeddedTransport({ path: dir.path });
    try {
      const names = ['max_thread_pool_free_size', 'max_parts_cleaning_thread_pool_size', 'max_active_parts_loading_thread_pool_size', 'max_outdated_parts_loading_thread_pool_size', 'max_unexpected_parts_loading_thread_pool_size'];
      const rows = await transport.query<{ name: string; value: string }>('SELECT name, value FROM system.server_settings WHERE name IN {names:Array(String)} ORDER BY name', { names });
      expect(Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]))).toEqual({
        max_active_parts_loading_thread_pool_size: 2,
        max_outdated_parts_loading_thread_pool_size: 2,
        max_parts_cleaning_thread_pool_size: 2,
        max_thread_pool_free_size: 16,
        max_unexpected_parts_loading_thread_pool_size: 2,
      });
    } finally {
      await transport.close();
      dir.cleanup();
    }
  });
});
