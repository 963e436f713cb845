/** A hit in the worker: the entities it blocks (block_keys, allow list, length), deduplication, the report bound, the metrics. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createHoneypotHits, MAX_REPORTS_PER_SECOND, type HoneypotHitReport } from '../../../src/ratelimit/honeypot-hits.js';
import { createHoneypotOverlay } from '../../../src/ratelimit/honeypot-overlay.js';

const automation = validateConfig({
  ratelimit: { security: { automation: { allow: ['remote_address=10.0.0.*', 'user=probe'], honeypots: [{ name: 'env', entries: ['path=/.env'], block_keys: ['remote_address', 'user'], block_ttl: '1m' }] } } },
}).ratelimit.security.automation;
const HONEYPOT = automation.honeypots[0]!;
const req = (...descriptors: Array<Record<string, string>>) => ({ domain: 'edge', descriptors: descriptors.map((x) => ({ entries: Object.entries(x).map(([key, value]) => ({ key, value })) })) });

function setup(firstSeq = 0, replicaBlocks: string[] = []) {
  let t = 5_000;
  const metrics = new Registry();
  const overlay = createHoneypotOverlay({ now: () => t });
  const reports: HoneypotHitReport[] = [];
  const hits = createHoneypotHits({ config: automation, overlay, blocked: (e) => replicaBlocks.includes(`${e.key}=${e.value}`), sink: (h) => void reports.push(h), firstSeq, metrics, now: () => t });
  const hit = (r: ReturnType<typeof req>) => hits.hit(HONEYPOT, r, r.descriptors[0]!);
  const value = async (name: string) => (await metrics.getSingleMetric(name)?.get())?.values.reduce((n, v) => n + v.value, 0);
  return { overlay, reports, hit, value, advance: (ms: number) => void (t += ms) };
}

describe('honeypot hits', () => {
  it("blocks the request's entries under block_keys (every descriptor), but not allowed ones nor values over 1024 characters", async () => {
    const { overlay, reports, hit, value } = setup(41);
    hit(req({ path: '/.env', remote_address: '203.0.113.9' }, { user: 'mallory' }, { user: 'probe' }, { remote_address: '10.0.0.7' }, { user: 'x'.repeat(1025) }));
    expect(reports).toEqual([{ seq: 42, honeypot: 'env', domain: 'edge', descriptor: 'path=/.env,remote_address=203.0.113.9', entries: expect.stringContaining('user=mallory,user=probe') as string, block: ['remote_address=203.0.113.9', 'user=mallory'], time: 5_000 }]);
    expect(reports[0]!.entries).toContain(`user=${'x'.repeat(32)}…#`); // long values shown shortened
    expect([overlay.has('remote_address=203.0.113.9'), overlay.has('user=mallory'), overlay.has('user=probe')]).toEqual([true, true, false]);
    expect(await value('heimdall_security_honeypot_hits_total')).toBe(1);
  });

  it('reports an entity once while it is blocked (here or in the replica); a hit with nothing to block (allowed) is reported', async () => {
    const { reports, hit, value, advance } = setup(0, ['remote_address=198.51.100.1']);
    hit(req({ path: '/.env', remote_address: '203.0.113.9' }));
    hit(req({ path: '/.env', remote_address: '203.0.113.9' }));
    hit(req({ path: '/.env', remote_address: '198.51.100.1' }));
    hit(req({ path: '/.env', remote_address: '10.0.0.1' }));
    expect(reports.map((r) => [r.seq, r.block])).toEqual([
      [1, ['remote_address=203.0.113.9']],
      [2, []],
    ]);
    expect(await value('heimdall_security_honeypot_hits_total')).toBe(4);
    advance(60_000); // its overlay block ended: a new hit is a new report
    hit(req({ path: '/.env', remote_address: '203.0.113.9' }));
    expect(reports.at(-1)?.block).toEqual(['remote_address=203.0.113.9']);
  });

  it(`reports at most ${MAX_REPORTS_PER_SECOND} hits a second: the rest are counted, block nothing, and the next second reports again`, async () => {
    const { overlay, reports, hit, value, advance } = setup();
    for (let i = 0; i < MAX_REPORTS_PER_SECOND + 50; i++) hit(req({ path: '/.env', remote_address: `192.0.2.${i}` }));
    expect(reports).toHaveLength(MAX_REPORTS_PER_SECOND);
    expect(overlay.size).toBe(MAX_REPORTS_PER_SECOND);
    expect(await value('heimdall_security_honeypot_reports_dropped_total')).toBe(50);
    expect(await value('heimdall_security_honeypot_reports_total')).toBe(MAX_REPORTS_PER_SECOND);
    expect(await value('heimdall_security_honeypot_hits_total')).toBe(MAX_REPORTS_PER_SECOND + 50);
    advance(1_000);
    hit(req({ path: '/.env', remote_address: '192.0.2.200' }));
    expect(reports).toHaveLength(MAX_REPORTS_PER_SECOND + 1);
  });
});
