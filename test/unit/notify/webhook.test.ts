import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookConfig } from '../../../src/config/automation.js';
import type { SecurityNotification } from '../../../src/notify/notification.js';
import { createWebhookNotifier } from '../../../src/notify/webhook.js';
import { MAX_RETRY_DELAY_MS, retryDelayMs } from '../../../src/notify/webhook-request.js';
import { VERSION } from '../../../src/version.js';
import { sleep, until } from '../../support/wait.js';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

/** A real HTTP receiver on loopback: `answer` handles the nth request (from 0); requests are kept. */
async function startReceiver(answer: (res: ServerResponse, n: number) => void) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      answer(res, received.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  cleanups.push(close);
  return { received, origin };
}

/** A logger keeping its lines as text. */
function capturingLogger() {
  const lines: string[] = [];
  return { lines, logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function start(options: { maxQueued?: number } = {}) {
  const registry = new Registry();
  const { logger, lines } = capturingLogger();
  const notifier = createWebhookNotifier({ logger, metrics: registry, agent: 'pod-a', ...options });
  cleanups.push(() => notifier.shutdown(1_000));
  const count = async (name: string, label: string, value: string): Promise<number> => {
    const metric = await registry.getSingleMetric(name)?.get();
    return metric?.values.find((v) => v.labels[label] === value)?.value ?? 0;
  };
  return {
    notifier,
    lines,
    delivered: () => count('heimdall_notifications_total', 'result', 'delivered'),
    failed: () => count('heimdall_notifications_total', 'result', 'failed'),
    dropped: () => count('heimdall_notifications_total', 'result', 'dropped'),
    attempts: (outcome: string) => count('heimdall_notification_attempts_total', 'outcome', outcome),
    pending: async () => (await registry.getSingleMetric('heimdall_notifications_pending')?.get())?.values[0]?.value ?? 0,
  };
}

const webhook = (url: string, more: Partial<WebhookConfig> = {}): WebhookConfig => ({ url, headers: {}, timeout: 5_000, retries: 5, backoff: 10, ...more });

let actions = 0;
const notification = (more: Partial<SecurityNotification> = {}): SecurityNotification => ({
  kind: 'mode',
  rule: 'burst',
  text: 'Heimdall switched to elevated: 120 refusals from 40 addresses in 1m',
  reason: 'rule burst: 120 refusals from 40 entities',
  action_id: `0193a1b2-c3d4-7e5f-8a9b-${String(++actions).padStart(12, '0')}`,
  time: '2026-12-02T15:00:00.000Z',
  mode: 'elevated',
  previous_mode: 'normal',
  ...more,
});

const ok = (res: ServerResponse) => res.writeHead(200).end('{"ok":true}');
const hang = () => undefined;

describe('webhook notifier', () => {
  it('POSTs the notification as JSON with source, agent, the configured headers and an idempotency key, once', async () => {
    const r = await startReceiver(ok);
    const n = start();
    const sent = notification({ kind: 'block', mode: undefined, previous_mode: undefined, entity: 'remote_address=10.0.0.7', expires_at: '2026-12-02T16:00:00.000Z' });
    n.notifier.notify(webhook(`${r.origin}/hooks/ops`, { headers: { 'X-Team': 'sre', authorization: 'Bearer t0k' } }), sent);
    await until(async () => (await n.delivered()) === 1, 10_000, 'the delivery');
    expect(r.received).toHaveLength(1);
    const [got] = r.received;
    expect(JSON.parse(got!.body)).toEqual({ ...sent, source: 'heimdall', agent: 'pod-a' });
    expect(got!.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': `heimdall/${VERSION}`,
      'x-team': 'sre',
      authorization: 'Bearer t0k',
      'idempotency-key': expect.stringMatching(new RegExp(`^${sent.action_id}\\.[A-Za-z0-9_-]{16}$`)),
    });
    expect([await n.attempts('ok'), await n.failed(), await n.dropped(), await n.pending()]).toEqual([1, 0, 0, 0]);
  });

  it('sends credentials in the URL as Basic authorization, and logs neither', async () => {
    const r = await startReceiver((res) => res.writeHead(403).end());
    const n = start();
    n.notifier.notify(webhook(r.origin.replace('//', '//hook%40ops:S3CRET%3Apass@') + '/h'), notification());
    await until(async () => (await n.failed()) === 1, 10_000, 'the refusal');
    expect(r.received[0]!.headers.authorization).toBe(`Basic ${Buffer.from('hook@ops:S3CRET:pass').toString('base64')}`);
    expect(n.lines.join('')).toContain(r.origin);
    expect(n.lines.join('')).not.toMatch(/S3CRET|hook%40ops|hook@ops/);
  });

  it('retries a 503 with backoff and delivers once, with the same idempotency key on every attempt', async () => {
    const r = await startReceiver((res, i) => (i < 2 ? res.writeHead(503).end() : ok(res)));
    const n = start();
    n.notifier.notify(webhook(`${r.origin}/h`, { retries: 3 }), notification());
    await until(async () => (await n.delivered()) === 1, 10_000, 'the delivery');
    expect(r.received).toHaveLength(3);
    expect(new Set(r.received.map((x) => x.headers['idempotency-key'])).size).toBe(1);
    expect([await n.attempts('retryable'), await n.attempts('ok'), await n.failed()]).toEqual([2, 1, 0]);
    // The same action to another webhook has another key.
    const other = await startReceiver(ok);
    n.notifier.notify(webhook(`${other.origin}/h`), notification({ action_id: JSON.parse(r.received[0]!.body).action_id }));
    await until(async () => (await n.delivered()) === 2, 10_000, 'the second delivery');
    expect(other.received[0]!.headers['idempotency-key']).not.toBe(r.received[0]!.headers['idempotency-key']);
  });

  it('waits at least the Retry-After of a 429 before retrying (the backoff is shorter)', async () => {
    const r = await startReceiver((res, i) => (i === 0 ? res.writeHead(429, { 'retry-after': '1' }).end() : ok(res)));
    const n = start();
    n.notifier.notify(webhook(`${r.origin}/h`, { backoff: 10 }), notification());
    await until(async () => (await n.delivered()) === 1, 10_000, 'the delivery');
    expect(r.received).toHaveLength(2);
    expect(r.received[1]!.at - r.received[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('retry delays: doubled from the backoff with ±20% jitter, at least Retry-After, never over 5 minutes', () => {
    for (let i = 0; i < 200; i++) {
      expect(retryDelayMs(1, 1_000)).toBeGreaterThanOrEqual(800);
      expect(retryDelayMs(1, 1_000)).toBeLessThanOrEqual(1_200);
      expect(retryDelayMs(3, 1_000)).toBeGreaterThanOrEqual(3_200);
      expect(retryDelayMs(3, 1_000)).toBeLessThanOrEqual(4_800);
      expect(retryDelayMs(1, 10, 2_000)).toBe(2_000);
      expect(retryDelayMs(20, 60_000)).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
    }
    expect(retryDelayMs(1, 10, 86_400_000)).toBe(MAX_RETRY_DELAY_MS);
  });

  it('gives up at once on a 400 and on a redirect, logging the status', async () => {
    const r = await startReceiver((res) => res.writeHead(400).end('bad'));
    const moved = await startReceiver((res) => res.writeHead(302, { location: `${r.origin}/elsewhere` }).end());
    const n = start();
    n.notifier.notify(webhook(`${r.origin}/h`), notification());
    n.notifier.notify(webhook(`${moved.origin}/h`), notification());
    await until(async () => (await n.failed()) === 2, 10_000, 'both given up');
    expect([r.received.length, moved.received.length, await n.attempts('refused'), await n.delivered()]).toEqual([1, 1, 2, 0]);
    const refusals = n.lines.map((l) => JSON.parse(l) as { msg: string; status?: number; webhook?: string }).filter((l) => l.msg.includes('refused'));
    expect(refusals.map((l) => [l.status, l.webhook]).sort()).toEqual([[302, moved.origin], [400, r.origin]].sort());
  });

  it('times out each attempt on a receiver that never answers, gives up after the retries, and stays usable', async () => {
    const silent = await startReceiver(hang);
    const n = start();
    n.notifier.notify(webhook(`${silent.origin}/h`, { timeout: 100, retries: 2, backoff: 10 }), notification());
    await until(async () => (await n.failed()) === 1, 15_000, 'the delivery to fail');
    expect([silent.received.length, await n.attempts('retryable'), await n.pending()]).toEqual([3, 3, 0]);
    expect(n.lines.some((l) => l.includes('timed out after 100 ms') && l.includes('retries exhausted'))).toBe(true);
    const r = await startReceiver(ok);
    n.notifier.notify(webhook(`${r.origin}/h`), notification());
    await until(async () => (await n.delivered()) === 1, 10_000, 'the next delivery');
  });

  it('keeps at most maxQueued pending; the rest are dropped, counted and logged once per burst', async () => {
    const r = await startReceiver(hang);
    const n = start({ maxQueued: 6 });
    for (let i = 0; i < 20; i++) n.notifier.notify(webhook(`${r.origin}/h`), notification());
    expect([await n.pending(), await n.dropped()]).toEqual([6, 14]);
    // 4 in flight at once, never more.
    await until(() => r.received.length === 4, 10_000, 'the requests in flight');
    await sleep(300);
    for (let i = 0; i < 5; i++) n.notifier.notify(webhook(`${r.origin}/h`), notification());
    expect([await n.pending(), await n.dropped(), r.received.length]).toEqual([6, 19, 4]);
    expect(n.lines.filter((l) => l.includes('dropping webhook notifications'))).toHaveLength(1);
  });

  it('a 200 whose body never ends is delivered and the connection is let go', async () => {
    let closed = false;
    const r = await startReceiver((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const more = setInterval(() => res.write('x'.repeat(64 * 1024)), 5);
      res.on('close', () => ((closed = true), clearInterval(more)));
    });
    const n = start();
    n.notifier.notify(webhook(`${r.origin}/h`), notification());
    await until(async () => (await n.delivered()) === 1, 10_000, 'the delivery');
    await until(() => closed, 10_000, 'the receiver to see the connection closed');
  });

  it('shutdown with a hanging receiver returns within the grace and counts the dropped; safe to call twice', async () => {
    const r = await startReceiver(hang);
    const n = start();
    for (let i = 0; i < 3; i++) n.notifier.notify(webhook(`${r.origin}/h`), notification());
    await until(() => r.received.length === 3, 10_000, 'the requests in flight');
    const t0 = Date.now();
    const first = n.notifier.shutdown(300);
    const second = n.notifier.shutdown(300);
    await Promise.all([first, second]);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect([await n.dropped(), await n.pending(), await n.failed()]).toEqual([3, 0, 0]);
    n.notifier.notify(webhook(`${r.origin}/h`), notification());
    expect([await n.dropped(), r.received.length]).toEqual([4, 3]);
  });

  it('shutdown does not wait for a retry due past the grace, and lets one due within it finish', async () => {
    const later = await startReceiver((res) => res.writeHead(503).end());
    const soon = await startReceiver((res, i) => (i === 0 ? res.writeHead(503).end() : ok(res)));
    const n = start();
    n.notifier.notify(webhook(`${later.origin}/h`, { backoff: 120_000 }), notification());
    n.notifier.notify(webhook(`${soon.origin}/h`, { backoff: 300 }), notification());
    await until(() => later.received.length === 1 && soon.received.length === 1, 10_000, 'the first attempts');
    const t0 = Date.now();
    await n.notifier.shutdown(20_000);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect([await n.dropped(), await n.delivered(), soon.received.length, later.received.length]).toEqual([1, 1, 2, 1]);
  });

  it('never logs the URL path or query, nor header values', async () => {
    const secrets = ['hooks-S3CRETPATH', 'S3CRETQUERY', 'S3CRETHEADER', 'S3CRETKEY'];
    const headers = { authorization: `Bearer ${secrets[2]}`, 'x-api-key': secrets[3]! };
    const refusing = await startReceiver((res) => res.writeHead(401).end());
    const failing = await startReceiver((res) => res.writeHead(500).end());
    const hanging = await startReceiver(hang);
    const n = start({ maxQueued: 3 });
    const url = (origin: string) => `${origin}/${secrets[0]}?token=${secrets[1]}`;
    n.notifier.notify(webhook(url(refusing.origin), { headers }), notification());
    n.notifier.notify(webhook(url(failing.origin), { headers, retries: 1 }), notification());
    await until(async () => (await n.failed()) === 2, 10_000, 'both to fail');
    for (let i = 0; i < 5; i++) n.notifier.notify(webhook(url(hanging.origin), { headers, timeout: 100, retries: 20, backoff: 10 }), notification());
    // A notifier that cannot build the request (a header value no HTTP request may carry) logs no value either.
    n.notifier.notify(webhook(url(hanging.origin), { headers: { 'x-bad': `${secrets[3]}\r\nx-injected: 1` } }), notification());
    await until(() => hanging.received.length >= 6, 10_000, 'retries against the hanging receiver');
    await n.notifier.shutdown(200);
    expect(await n.failed()).toBe(3);
    const text = n.lines.join('');
    expect(text).toContain(refusing.origin);
    expect(text).toContain(failing.origin);
    for (const s of secrets) expect(text).not.toContain(s);
  });
});
