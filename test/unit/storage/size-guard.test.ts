/** The embedded store's size budget, against the real engine: oldest partitions go first, the newest stays, inserts are refused at the limit. */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createEmbeddedTransport } from '../../../src/storage/embedded.js';
import { migrate } from '../../../src/storage/migrate.js';
import { createSizeGuard } from '../../../src/storage/size-guard.js';
import { schemaContextFor } from '../../../src/storage/storage.js';
import type { StorageTransport } from '../../../src/storage/transport.js';
import { silentLogger, tempDir } from '../../support/temp.js';

describe('storage size guard', () => {
  const dir = tempDir();
  let t: StorageTransport;
  beforeAll(async () => {
    t = await createEmbeddedTransport({ path: dir.path });
    await migrate(t, schemaContextFor(validateConfig({}).storage), silentLogger());
    // Six days of logs, one partition a day, about the same size each; today's is the newest.
    for (let day = 5; day >= 0; day--) {
      await t.command(`INSERT INTO otel_logs (Timestamp, ServiceName, Body) SELECT toDateTime64(toStartOfDay(now()) - toIntervalDay(${day}), 9) + toIntervalSecond(number % 3600), 'svc', randomPrintableASCII(200) FROM numbers(20000)`);
    }
  });
  afterAll(async () => {
    await t.close();
    dir.cleanup();
  });

  const partitions = async () => (await t.query<{ id: string }>("SELECT DISTINCT partition_id AS id FROM system.parts WHERE table = 'otel_logs' AND active ORDER BY id")).map((r) => r.id);
  const storeBytes = async () => Number((await t.query<{ b: string }>('SELECT sum(bytes_on_disk) AS b FROM system.parts'))[0]?.b);
  const activeBytes = async () => Number((await t.query<{ b: string }>('SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE active'))[0]?.b);

  it('leaves a store under its high-water mark alone and measures it', async () => {
    const bytes = await storeBytes();
    const guard = createSizeGuard({ maxBytes: bytes * 2, logger: silentLogger(), metrics: new Registry() });
    const report = await guard.enforce(t);
    expect(report).toEqual({ measured: bytes, dropped: [], droppedBytes: 0 });
    expect(guard.used).toBe(bytes);
    expect(guard.refusal()).toBeUndefined();
    guard.noteInsert(bytes);
    expect(guard.used).toBe(2 * bytes);
    expect(guard.refusal()).toMatch(/^the embedded store holds \d+ bytes, its limit storage\.embedded\.max_size is \d+; the oldest data is being dropped$/);
  });

  it('decides on the data that stays: parts a merge just replaced (still on disk a while) do not make it drop anything', async () => {
    await t.command('OPTIMIZE TABLE otel_logs FINAL');
    const [row] = await t.query<{ total: string; active: string }>('SELECT sum(bytes_on_disk) AS total, sumIf(bytes_on_disk, active) AS active FROM system.parts');
    const active = Number(row?.active);
    // Live data at 80% of the budget: under the 90% mark, whatever the replaced parts add.
    const guard = createSizeGuard({ maxBytes: Math.round(active / 0.8), logger: silentLogger(), metrics: new Registry() });
    const report = await guard.enforce(t);
    expect(report.dropped).toEqual([]);
    expect(report.measured).toBe(Number(row?.total));
    expect(await partitions()).toHaveLength(6);
  });

  it('drops partitions dated in the future first: a client clock in 2099 does not pin them, nor make today go', async () => {
    await t.command("INSERT INTO otel_logs (Timestamp, ServiceName, Body) SELECT toDateTime64('2099-01-01 00:00:00', 9) + toIntervalSecond(number), 'svc', randomPrintableASCII(200) FROM numbers(20000)");
    const bytes = await activeBytes();
    // Only a little has to go: the 2099 partition is the first.
    const guard = createSizeGuard({ maxBytes: Math.round(bytes / 0.92), highWater: 0.9, lowWater: 0.89, logger: silentLogger(), metrics: new Registry() });
    const report = await guard.enforce(t);
    expect(report.dropped).toEqual(['otel_logs/20990101']);
    expect(await partitions()).toHaveLength(6);
  });

  it('past 90% of the budget drops the oldest days until under 75%, and never the newest partition', async () => {
    const before = await partitions();
    expect(before).toHaveLength(6);
    const bytes = await activeBytes();
    // A budget just over the store: 90% is passed, 75% needs about a quarter of the data gone.
    const metrics = new Registry();
    const guard = createSizeGuard({ maxBytes: Math.round(bytes / 0.95), logger: silentLogger(), metrics });
    const report = await guard.enforce(t);
    const after = await partitions();
    expect(report.dropped).toEqual(before.slice(0, before.length - after.length).map((id) => `otel_logs/${id}`));
    expect(after).toEqual(before.slice(-after.length));
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(after.length).toBeLessThanOrEqual(4);
    expect(await activeBytes()).toBeLessThanOrEqual(guard.limit * 0.75);
    expect(await metrics.metrics()).toMatch(/^heimdall_storage_size_dropped_partitions_total\{table="otel_logs"\} [12]$/m);

    // A budget nothing can meet: everything but the newest partition goes, then inserts are refused, saying why.
    const tiny = createSizeGuard({ maxBytes: 1024, logger: silentLogger(), metrics: new Registry() });
    await tiny.enforce(t);
    expect(await partitions()).toEqual(before.slice(-1));
    expect(tiny.refusal()).toMatch(/only the newest partitions are left: raise the limit or shorten retention$/);
  });
});
