/** The storage component against a ClickHouse server (the HTTP interface over chdb) whose schema another process owns. */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { migrate } from '../../../src/storage/migrate.js';
import { MIGRATIONS } from '../../../src/storage/migrations/index.js';
import { createStorage, openTransport, schemaContextFor, type Storage } from '../../../src/storage/storage.js';
import { startClickHouseHttp, type ClickHouseHttp } from '../../support/clickhouse-http.js';
import { silentLogger, tempDir } from '../../support/temp.js';

describe('storage with migrate_on_start: false', () => {
  const dir = tempDir();
  let server: ClickHouseHttp;
  let storage: Storage;
  const health = createHealthRegistry();
  beforeAll(async () => {
    server = await startClickHouseHttp(dir.path, { user: 'heimdall', password: 'pw' });
  });
  afterAll(async () => {
    await storage.shutdown();
    await server.close();
    dir.cleanup();
  });

  it('stays not ready, saying why, until "heimdall migrate" has applied every migration; it runs no DDL itself', async () => {
    const config = validateConfig({
      storage: { clickhouse: { url: server.url, username: 'heimdall', password: 'pw' }, migrate_on_start: false, retry: { initial_interval: '50ms', max_interval: '200ms' } },
    }).storage;
    storage = createStorage({ config, logger: silentLogger(), health, metrics: new Registry() });
    await storage.start();
    const versions = MIGRATIONS.map((m) => m.version).join(', ');
    await expect.poll(() => health.component('storage')?.reason, { timeout: 30_000 }).toMatch(/^server storage at .* is not available: /);
    expect(storage.ready).toBe(false);
    expect(health.component('storage')?.reason).toMatch(
      new RegExp(`is not available: schema not migrated: migrations ${versions} not applied \\(storage\\.migrate_on_start is false: run "heimdall migrate"\\); retrying in \\d+ ms$`),
    );
    expect(server.log.some((r) => /^\s*(CREATE|ALTER|DROP)\b/i.test(r.sql))).toBe(false);

    // What the migration Job does: its own process, its own connection.
    const job = await openTransport(config);
    await migrate(job, schemaContextFor(config), silentLogger());
    await job.close();
    expect(await storage.whenReady(AbortSignal.timeout(30_000))).toBe(true);
    expect(health.component('storage')?.state).toBe('ready');
  });
});
