/** The dashboard's honeypot hits on real embedded ClickHouse: newest first, within the window and of the event type only, at most `top`; values with quotes stay values. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { honeypotHitsDashboard } from '../../../src/query/honeypot-dashboard.js';
import { HONEYPOT_HIT_EVENT } from '../../../src/ratelimit/honeypots.js';
import { EVENTS } from '../../../src/storage/tables.js';
import { nanosToDateTime64 } from '../../../src/time/datetime64.js';
import { startEmbeddedStorage } from '../../support/embedded-storage.js';

const SECOND = 1_000_000_000n;
/** Two hours ago, in whole seconds (recent: heimdall_events has a retention TTL). */
const BASE = (BigInt(Date.now()) / 1000n - 7200n) * SECOND;

describe('the honeypot hits of the dashboard', () => {
  let db: Awaited<ReturnType<typeof startEmbeddedStorage>>;
  beforeAll(async () => {
    db = await startEmbeddedStorage();
    const row = (i: number, type: string, honeypot: string, descriptor: string, blocked: string[], at = BASE + BigInt(i) * SECOND) => ({
      Timestamp: nanosToDateTime64(at),
      Id: `h${i}`,
      EventType: type,
      Payload: JSON.stringify({ honeypot, domain: 'edge', descriptor, entries: descriptor, blocked }),
    });
    await db.storage.transport.insert(EVENTS.name, [
      row(1, HONEYPOT_HIT_EVENT, 'env', 'path=/.env', ['remote_address=203.0.113.1']),
      row(2, HONEYPOT_HIT_EVENT, 'wordpress', "path=/wp-login.php?x=' OR 1=1", []),
      row(3, HONEYPOT_HIT_EVENT, 'env', 'path=/.env.local', ['remote_address=203.0.113.2', 'user=eve']),
      row(4, 'ratelimit.over_limit', 'env', 'path=/.env', ['remote_address=203.0.113.9']),
      row(5, HONEYPOT_HIT_EVENT, 'env', 'path=/.env', ['remote_address=203.0.113.9'], BASE + 3600n * SECOND),
    ]);
  });
  afterAll(async () => {
    await db.stop();
  });
  const query = <T>(sql: string, params: Record<string, unknown>) => db.storage.transport.query<T>(sql, params as never);
  const range = { start: BASE, end: BASE + 3600n * SECOND };

  it('lists the hits in the window, newest first, with their honeypot, descriptor and blocked entities', async () => {
    const hits = await honeypotHitsDashboard(query, range, { eventType: HONEYPOT_HIT_EVENT, top: 0 });
    expect(hits.map((h) => [h.time?.seconds, h.honeypot, h.domain, h.entries, h.blocked])).toEqual([
      [BASE / SECOND + 3n, 'env', 'edge', 'path=/.env.local', ['remote_address=203.0.113.2', 'user=eve']],
      [BASE / SECOND + 2n, 'wordpress', 'edge', "path=/wp-login.php?x=' OR 1=1", []],
      [BASE / SECOND + 1n, 'env', 'edge', 'path=/.env', ['remote_address=203.0.113.1']],
    ]);
  });

  it('lists at most `top` (and at most 1000)', async () => {
    expect((await honeypotHitsDashboard(query, range, { eventType: HONEYPOT_HIT_EVENT, top: 1 })).map((h) => h.entries)).toEqual(['path=/.env.local']);
    expect(await honeypotHitsDashboard(query, range, { eventType: HONEYPOT_HIT_EVENT, top: 1_000_000 })).toHaveLength(3);
  });
});
