import type { Logger } from '../telemetry/logger.js';
import { ttlExpression, type Migration, type SchemaContext } from './migrations/context.js';
import { StorageError } from './errors.js';
import { MIGRATIONS } from './migrations/index.js';
import { SCHEMA_MIGRATIONS } from './tables.js';
import type { StorageTransport } from './transport.js';

/** What a migration run did. */
export interface MigrationReport {
  applied: number[];
  /** Tables whose TTL was changed to match the configured retention. */
  retentionUpdated: string[];
}

/** Options for deriving a SchemaContext from settings. */
export interface SchemaSettings {
  cluster?: string | undefined;
  engine?: { name: string; params: string } | undefined;
  retention: SchemaContext['retention'];
  /** The engine is the embedded one (default false: a server). */
  embedded?: boolean | undefined;
}

/** Builds the SchemaContext: `ON CLUSTER` when a cluster is named, and the table engine. */
export function schemaContext(settings: SchemaSettings): SchemaContext {
  const engine = settings.engine ?? { name: settings.cluster ? 'ReplicatedMergeTree' : 'MergeTree', params: '' };
  return {
    onCluster: settings.cluster ? ` ON CLUSTER "${settings.cluster}"` : '',
    engine: `${engine.name}(${engine.params})`,
    aggregatingEngine: `${/^(Replicated|Shared)?MergeTree$/.test(engine.name) ? engine.name.replace(/MergeTree$/, 'AggregatingMergeTree') : engine.name}(${engine.params})`,
    replacingEngine: (args) => `${/^(Replicated|Shared)?MergeTree$/.test(engine.name) ? engine.name.replace(/MergeTree$/, 'ReplacingMergeTree') : engine.name}(${[engine.params, args].filter((p) => p !== '').join(', ')})`,
    retention: settings.retention,
    embedded: settings.embedded ?? false,
  };
}

/**
 * Applies every migration not yet recorded, in order, then brings each table's TTL in line with
 * the configured retention. Safe to run concurrently from several replicas and to run again:
 * every statement is idempotent and a migration is recorded only after all its statements ran.
 */
export async function migrate(transport: StorageTransport, ctx: SchemaContext, logger: Logger, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationReport> {
  const first = migrations[0];
  if (first) for (const sql of first.statements(ctx)) await transport.command(sql);
  const done = new Set((await transport.query<{ version: number }>(`SELECT DISTINCT version FROM ${SCHEMA_MIGRATIONS.name}`)).map((r) => Number(r.version)));
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    logger.info({ version: m.version, migration: m.name }, 'applying migration');
    for (const sql of m.statements(ctx)) await transport.command(sql);
    await transport.insert(SCHEMA_MIGRATIONS.name, [{ version: m.version, name: m.name }]);
    applied.push(m.version);
  }
  const retentionUpdated = await syncRetention(transport, ctx, migrations);
  if (applied.length > 0 || retentionUpdated.length > 0) logger.info({ applied, retentionUpdated }, 'storage schema is up to date');
  return { applied, retentionUpdated };
}

/**
 * Resolves once every migration is recorded as applied; rejects with a retryable StorageError
 * naming the missing versions otherwise (when another process, `heimdall migrate`, owns the DDL).
 * Reads only: never changes the schema.
 */
export async function requireMigrated(transport: StorageTransport, migrations: readonly Migration[] = MIGRATIONS): Promise<void> {
  const [table] = await transport.query<{ n: number }>('SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {name:String}', { name: SCHEMA_MIGRATIONS.name });
  const done = Number(table?.n) > 0 ? new Set((await transport.query<{ version: number }>(`SELECT DISTINCT version FROM ${SCHEMA_MIGRATIONS.name}`)).map((r) => Number(r.version))) : new Set<number>();
  const missing = migrations.filter((m) => !done.has(m.version)).map((m) => m.version);
  if (missing.length === 0) return;
  throw new StorageError(`schema not migrated: migrations ${missing.join(', ')} not applied (storage.migrate_on_start is false: run "heimdall migrate")`, { retryable: true });
}

/** Sets or removes each table's TTL where it differs from the configured retention. */
async function syncRetention(transport: StorageTransport, ctx: SchemaContext, migrations: readonly Migration[]): Promise<string[]> {
  const wanted = migrations.flatMap((m) => m.retention ?? []);
  if (wanted.length === 0) return [];
  const rows = await transport.query<{ name: string; engine_full: string }>(
    'SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name IN {names:Array(String)}',
    { names: wanted.map((w) => w.table) },
  );
  const current = new Map(rows.map((r) => [r.name, r.engine_full]));
  const updated: string[] = [];
  for (const { table, column, signal } of wanted) {
    const engineFull = current.get(table);
    if (engineFull === undefined) continue;
    const ms = ctx.retention[signal];
    const has = /\bTTL\b/.test(engineFull);
    if (ms > 0) {
      const expr = ttlExpression(column, ms);
      if (engineFull.includes(expr)) continue;
      await transport.command(`ALTER TABLE ${table}${ctx.onCluster} MODIFY TTL ${expr}`);
    } else {
      if (!has) continue;
      await transport.command(`ALTER TABLE ${table}${ctx.onCluster} REMOVE TTL`);
    }
    updated.push(table);
  }
  return updated;
}
