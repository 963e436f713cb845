/** The over-limit dashboard query on real embedded ClickHouse: hits by limit, top entities, incidents, within the window only. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { overLimitDashboard } from '../../../src/query/over-limit-dashboard.js';
import { OVER_LIMIT_EVENT } from '../../../src/ratelimit/over-limit.js';
import { EVENTS } from '../../../src/storage/tables.js';
import { nanosToDateTime64 } from '../../../src/time/datetime64.js';
import { startEmbeddedStorage } from '../../support/embedded-storage.js';

const TYPE = OVER_LIMIT_EVENT;
const SECOND = 1_000_000_000n;
/**
 * Two hours ago, in whole seconds. The rows must be recent: heimdall_events has a retention TTL
 * (storage.retention.events, 90 days), and a background TTL merge soon drops a part of older rows.
 */
const BASE = (BigInt(Date.now()) / 1000n - 7200n) * SECOND;

describe('the over-limit dashboard', () => {
  let db: Awaited<ReturnType<typeof startEmbeddedStorage>>;
  beforeAll(async () => {
    db = await startEmbeddedStorage();
    const row = (i: number, type: string, domain: string, descriptor: string, entity: string, hits: number, at = BASE + BigInt(i) * SECOND) => ({
      Timestamp: nanosToDateTime64(at),
      Id: `e${i}`,
      EventType: type,
      Payload: JSON.stringify({ domain, descriptor, entity, hits }),
    });
    await db.storage.transport.insert(EVENTS.name, [
      row(1, TYPE, 'edge', 'remote_address', 'remote_address=203.0.113.1', 150),
      row(2, TYPE, 'edge', 'remote_address', 'remote_address=203.0.113.2', 40),
      row(3, TYPE, 'edge', 'remote_address', 'remote_address=203.0.113.1', 120),
      row(4, TYPE, 'api', 'user', 'user=mallory', 100),
      row(5, 'job.run.failed', 'edge', 'remote_address', 'remote_address=203.0.113.9', 10_000),
      row(6, TYPE, 'edge', 'remote_address', 'remote_address=203.0.113.9', 10_000, BASE + 3600n * SECOND),
    ]);
  });
  afterAll(async () => {
    await db.stop();
  });
  const query = <T>(sql: string, params: Record<string, unknown>) => db.storage.transport.query<T>(sql, params as never);
  const range = { start: BASE, end: BASE + 3600n * SECOND };

  it('sums hits by limit and by entity, and lists records at the incident threshold as incidents, most hits first', async () => {
    const d = await overLimitDashboard(query, range, { eventType: TYPE, top: 0, incidentThreshold: 100 });
    expect(d.overLimit).toEqual([
      { domain: 'edge', descriptor: 'remote_address', hits: 310n },
      { domain: 'api', descriptor: 'user', hits: 100n },
    ]);
    expect(d.topEntities).toEqual([
      { entity: 'remote_address=203.0.113.1', hits: 270n },
      { entity: 'user=mallory', hits: 100n },
      { entity: 'remote_address=203.0.113.2', hits: 40n },
    ]);
    expect(d.incidents?.map((i) => [i.entity, i.hits, i.time?.seconds])).toEqual([
      ['remote_address=203.0.113.1', 150n, BigInt(BASE / SECOND) + 1n],
      ['remote_address=203.0.113.1', 120n, BigInt(BASE / SECOND) + 3n],
      ['user=mallory', 100n, BigInt(BASE / SECOND) + 4n],
    ]);
  });

  it('lists at most `top` entities and incidents', async () => {
    const d = await overLimitDashboard(query, range, { eventType: TYPE, top: 1, incidentThreshold: 1 });
    expect(d.topEntities?.map((e) => e.entity)).toEqual(['remote_address=203.0.113.1']);
    expect(d.incidents?.map((i) => i.hits)).toEqual([150n]);
    expect(d.overLimit).toHaveLength(2);
  });
});
