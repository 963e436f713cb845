/**
 * The main thread's side of honeypots over the real security changes (action book, policy, store on
 * embedded ClickHouse, ingest pipeline): a hit's entities are blocked by the system actor (not those
 * blocked already), the hit is audited at its own time, the webhook and the rules hear of it, reports are
 * acknowledged; with storage down, nothing is thrown and the failed report is listed (the worker keeps its block).
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { Severity } from '../../../src/gen/heimdall/v1/events_pb.js';
import { ActionState } from '../../../src/gen/heimdall/v1/security_pb.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createPipeline, type Pipeline } from '../../../src/ingest/pipeline/pipeline.js';
import type { SecurityNotification } from '../../../src/notify/notification.js';
import type { HoneypotHitReport } from '../../../src/ratelimit/honeypot-hits.js';
import { createHoneypots, HONEYPOT_HIT_EVENT } from '../../../src/ratelimit/honeypots.js';
import { createActionBook } from '../../../src/ratelimit/security-actions.js';
import { createSecurityChanges } from '../../../src/ratelimit/security-changes.js';
import { createSecurityPolicy } from '../../../src/ratelimit/security-policy.js';
import { createSecurityStore } from '../../../src/ratelimit/security-store.js';
import type { Storage } from '../../../src/storage/storage.js';
import { EVENTS } from '../../../src/storage/tables.js';
import { createTestStorage, startEmbeddedStorage, type TestStorage } from '../../support/embedded-storage.js';
import { silentLogger } from '../../support/temp.js';
import { until } from '../../support/wait.js';

const config = validateConfig({
  ratelimit: { security: { automation: { honeypots: [{ name: 'env', block_ttl: '90500ms', webhook: { url: 'https://hooks.example.com/x' } }, { name: 'quiet', block_keys: ['user'] }] } } },
}).ratelimit.security;
const hit = (seq: number, block: string[], honeypot = 'env', time = Date.now()): HoneypotHitReport => ({ seq, honeypot, domain: 'edge', descriptor: 'path=/.env', entries: 'path=/.env,remote_address=203.0.113.9', block, time });

function honeypotsOver(storage: Storage, pipeline: Pipeline) {
  const metrics = new Registry();
  const policy = createSecurityPolicy({ config });
  const book = createActionBook({ ttlMs: config.approval_ttl });
  const changes = createSecurityChanges({ book, policy, store: createSecurityStore({ storage }), pipeline, onChange: () => undefined, metrics, logger: silentLogger() });
  const seen = { notified: [] as SecurityNotification[], hits: [] as Array<[number, string[]]>, processed: 0 };
  const honeypots = createHoneypots({ config: config.automation.honeypots, changes, policy, pipeline, notify: (_w, n) => void seen.notified.push(n), onHit: (count, entities) => void seen.hits.push([count, entities]), onProcessed: () => void (seen.processed += 1), metrics, logger: silentLogger() });
  return { honeypots, policy, book, seen, metrics };
}

describe('honeypots (main thread)', () => {
  let db: TestStorage;
  let pipeline: Pipeline;
  beforeAll(async () => {
    db = await startEmbeddedStorage();
    pipeline = createPipeline({ config: validateConfig({}).ingest, storage: db.storage, logger: silentLogger(), metrics: new Registry(), health: createHealthRegistry() });
    await pipeline.start();
  });
  afterAll(async () => {
    await pipeline.shutdown();
    await db.stop();
  });

  it('blocks the entities not blocked already (system actor, block_ttl in whole seconds), audits the hit, tells the webhook and the rules, acknowledges', async () => {
    const { honeypots, policy, book, seen } = honeypotsOver(db.storage, pipeline);
    policy.apply({ kind: 'block', block: { entity: 'user=eve', reason: 'x', expiresAt: 0, createdAt: 1, requestedBy: 'a', approvedBy: 'b' } });
    expect(honeypots.acks()).toEqual({ acked: 0, failed: [] });
    // Hit a minute ago (the report waited): audited at the hit's time, not at its processing.
    const hitAt = Date.now() - 60_000;
    honeypots.report(hit(7, ['remote_address=203.0.113.9', 'user=eve'], 'env', hitAt));
    await honeypots.idle();
    expect(honeypots.acks()).toEqual({ acked: 7, failed: [] });
    expect(seen.processed).toBe(1);
    const [action] = book.list(ActionState.EXECUTED);
    expect(action).toMatchObject({ change: { kind: 'block', entity: 'remote_address=203.0.113.9', reason: 'honeypot env', durationSeconds: 91 }, requestedBy: 'system', decidedBy: 'system' });
    expect(book.all()).toHaveLength(1);
    expect(policy.check([{ key: 'remote_address', value: '203.0.113.9' }])).toEqual({ refuse: true, reason: 'blocked' });
    expect(seen.notified).toEqual([{ kind: 'block', rule: 'env', text: expect.stringMatching(/^Heimdall blocked remote_address=203\.0\.113\.9 until .*Z: honeypot env was hit$/) as string, reason: 'honeypot env hit in edge: path=/.env', action_id: action?.id, time: new Date(action!.decidedAt).toISOString(), entity: 'remote_address=203.0.113.9', expires_at: new Date(action!.decidedAt + 91_000).toISOString() }]);
    expect(seen.hits).toEqual([[1, ['remote_address=203.0.113.9', 'user=eve']]]);
    // A honeypot without a webhook tells nobody; an unknown one is logged and acknowledged.
    honeypots.report(hit(8, ['user=mallory'], 'quiet'));
    honeypots.report(hit(9, ['user=x'], 'gone'));
    await honeypots.idle();
    expect([seen.notified.length, honeypots.acks().acked, book.all().length]).toEqual([1, 9, 2]);
    const rows = await until(async () => {
      const r = await db.rows<{ ms: string; Severity: number; Category: string; ActorId: string; Message: string; honeypot: string; blocked: string[]; entries: string }>(
        `SELECT toString(toUnixTimestamp64Milli(Timestamp)) AS ms, Severity, Category, ActorId, Message, JSONExtractString(Payload, 'honeypot') AS honeypot, JSONExtract(Payload, 'blocked', 'Array(String)') AS blocked, JSONExtractString(Payload, 'entries') AS entries FROM ${EVENTS.name} WHERE EventType = {type:String} ORDER BY Timestamp`,
        { type: HONEYPOT_HIT_EVENT },
      );
      return r.length === 2 && r;
    });
    expect(rows[0]).toEqual({ ms: String(hitAt), Severity: Severity.WARNING, Category: 'security', ActorId: 'system', Message: 'honeypot env hit in edge: path=/.env; blocked remote_address=203.0.113.9', honeypot: 'env', blocked: ['remote_address=203.0.113.9'], entries: 'path=/.env,remote_address=203.0.113.9' });
    expect(rows[1]).toMatchObject({ honeypot: 'quiet', blocked: ['user=mallory'] });
  });

  it('with storage down: nothing is thrown, the failure is listed until the block would end, and a flood past the queue bound is counted', async () => {
    const down = createTestStorage(); // never started: every write is refused
    const { honeypots, policy, metrics } = honeypotsOver(down.storage, pipeline);
    honeypots.report(hit(1, ['remote_address=192.0.2.1']));
    await honeypots.idle();
    expect(honeypots.acks()).toEqual({ acked: 1, failed: [1] });
    expect(policy.blocks()).toEqual([]);
    for (let seq = 2; seq <= 1_005; seq++) honeypots.report(hit(seq, [`remote_address=192.0.2.${seq % 250}`]));
    await honeypots.idle();
    expect(honeypots.acks().acked).toBe(1_001);
    expect(honeypots.acks().failed).toHaveLength(1_005); // every failed and unprocessed one (at most 10,000, as many as the worker's overlay holds)
    expect((await metrics.getSingleMetric('heimdall_security_honeypot_reports_unprocessed_total')?.get())?.values[0]?.value).toBe(4);
    await down.stop();
  }, 60_000);
});
