/**
 * The console's security page lists honeypot hits, in headless Chromium against a real agent (auth
 * on, embedded storage): a real RLS gRPC client springs a limits-file trap and a config trap (one
 * from an allowed address); the page's "Honeypot hits" table shows both, newest first, with the
 * entity blocked. Saves security-honeypots.png.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { expectClean, haveChromium, launchBrowser, openPage, screenshot, signIn } from '../support/browser.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const TOKENS = { admin: 'console-hp-admin-token-7c2e9a41', adminB: 'console-hp-admin-b-token-5d1e0c92', envoy: 'console-hp-envoy-token-3b8d1f64' };

describe.runIf(haveChromium())('console: honeypot hits on the security page in Chromium', () => {
  const dir = tempDir();
  let t: TestAgent;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'edge.yaml'), 'domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: hour, requests_per_unit: 1000 }\n  - key: path\n    value: /wp-login.php\n    honeypot: wordpress\n');
    t = await startTestAgent({
      auth: { enabled: true, tokens: [{ name: 'admin', token: TOKENS.admin, scopes: ['admin', 'query'] }, { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin'] }, { name: 'envoy', token: TOKENS.envoy, scopes: ['ratelimit'] }] },
      ingest: { batch: { max_delay: '20ms' } },
      ratelimit: { config_path: join(dir.path, 'limits'), security: { automation: { allow: ['remote_address=10.0.0.*'], honeypots: [{ name: 'wordpress' }, { name: 'dotenv', entries: ['path=/.env'] }] } } },
      jobs: { system_check: { enabled: false } },
    });
    const rls = connect({ addr: t.grpcAddress, token: TOKENS.envoy });
    const hit = (ip: string, path: string) => rls.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge', descriptors: [{ entries: [{ key: 'remote_address', value: ip }] }, { entries: [{ key: 'path', value: path }] }] });
    const codes = [(await hit('203.0.113.40', '/wp-login.php')).overallCode];
    // Newer (listed first): a hit from an allowed address, which blocks nothing.
    await new Promise((r) => setTimeout(r, 20));
    codes.push((await hit('10.0.0.8', '/.env')).overallCode);
    if (codes.some((c) => c !== RateLimitResponse_Code.OVER_LIMIT)) throw new Error(`the trap hits were not refused: ${codes.join()}`);
    rls.close();
    const admin = connect({ addr: t.grpcAddress, token: TOKENS.admin });
    try {
      await until(async () => (await admin.unary(SecurityService.method.getDashboard, {})).honeypotHits.length === 2, 30_000, 'both hits on the dashboard');
    } finally {
      admin.close();
    }
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    dir.cleanup();
  });

  it('lists the hits, newest first, with their honeypot, descriptor and the entity blocked', async () => {
    const { page, record } = await openPage(browser);
    const ui = `${t.adminUrl}/ui/`;
    await signIn(page, ui, TOKENS.admin);
    await page.goto(`${ui}security?since=1h`);
    const rows = page.locator('[data-testid="honeypot-hits"] tbody tr[data-key]');
    await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(2);
    const cells = async (i: number) => (await rows.nth(i).locator('td').allTextContents()).slice(1);
    expect(await cells(0)).toEqual(['dotenv', 'edge', 'path=/.env', '—']);
    expect(await cells(1)).toEqual(['wordpress', 'edge', 'path=/wp-login.php', 'remote_address=203.0.113.40']);
    expect((await rows.nth(0).locator('td').first().textContent()) ?? '').toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    // The block it made is listed with the others, by the system actor.
    await expect.poll(() => page.locator('[data-testid="blocks"] tr[data-key="remote_address=203.0.113.40"] td').allTextContents()).toEqual(['remote_address=203.0.113.40', expect.any(String) as string, 'honeypot wordpress', 'system / system', 'Unblock']);
    await page.locator('[data-testid="honeypot-hits"]').scrollIntoViewIfNeeded();
    await page.waitForLoadState('networkidle');
    await screenshot(page, 'security-honeypots');
    // The automatic block is listed with the window's automatic actions, by the system actor.
    const automatic = page.locator('[data-testid="automatic-actions"] tbody tr[data-key]');
    await expect.poll(() => automatic.count(), { timeout: 20_000 }).toBe(1);
    const auto = await automatic.first().locator('td').allTextContents();
    expect(auto.slice(0, 5)).toEqual(['executed', 'block remote_address=203.0.113.40 for 1h', 'honeypot wordpress hit in edge: path=/wp-login.php', 'system', 'system']);
    await expectClean(record);
  }, 60_000);

  it('shows a pinned mode and who set it, and requests a pinned mode from the form', async () => {
    const { page, record } = await openPage(browser);
    const ui = `${t.adminUrl}/ui/`;
    await signIn(page, ui, TOKENS.admin);
    await page.goto(`${ui}security?since=1h`);
    await expect.poll(() => page.locator('[data-testid="mode"]').textContent(), { timeout: 20_000 }).toBe('normal');
    expect(await page.locator('[data-testid="pinned"]').count()).toBe(0);
    const form = page.locator('[data-testid="request-mode"]');
    await form.locator('select[name="mode"]').selectOption('elevated');
    await form.locator('input[name="reason"]').fill('hold while we look');
    await form.locator('input[name="pin"]').check();
    await form.locator('button[type="submit"]').click();
    const pending = page.locator('[data-testid="actions"] tbody tr[data-key]', { hasText: 'set mode elevated (pinned)' });
    await expect.poll(() => pending.count(), { timeout: 20_000 }).toBe(1);
    const id = (await pending.first().getAttribute('data-key')) ?? '';
    const other = connect({ addr: t.grpcAddress, token: TOKENS.adminB });
    try {
      await other.unary(SecurityService.method.approveAction, { id });
    } finally {
      other.close();
    }
    await expect.poll(() => page.locator('[data-testid="pinned"]').count(), { timeout: 20_000 }).toBe(1);
    expect(await page.locator('[data-testid="mode"]').textContent()).toBe('elevated');
    expect(await page.locator('[data-testid="mode-detail"]').textContent()).toMatch(/^set by admin-b · /);
    await page.locator('[data-testid="mode"]').scrollIntoViewIfNeeded();
    await screenshot(page, 'security-pinned');
    await expectClean(record);
  }, 60_000);
});
