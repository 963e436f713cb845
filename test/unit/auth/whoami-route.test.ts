/** GET /auth/whoami over a real node:http listener with a real authenticator: what a token may do, always 200. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../src/auth/auth.js';
import { addWhoAmIRoute } from '../../../src/auth/whoami-route.js';
import { validateConfig } from '../../../src/config/load.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createRouter } from '../../../src/server/http-router.js';
import { silentLogger } from '../../support/temp.js';

const TOKENS = [
  { name: 'ops', token: 'ops-token-0123456789', scopes: ['admin', 'query'] },
  { name: 'viewer', token: 'viewer-token-0123456789', scopes: ['query'] },
  { name: 'acme-admin', token: 'acme-token-0123456789', scopes: ['admin', 'ingest'], tenant: 'acme' },
];

async function serve(enabled: boolean): Promise<{ server: Server; get: (token?: string) => Promise<Response> }> {
  const config = validateConfig({ auth: { enabled, tokens: enabled ? TOKENS : [] } });
  const auth = createAuthenticator(config.auth, { logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() });
  const router = createRouter({ name: 'test', auth, logger: silentLogger(), metrics: new Registry() });
  addWhoAmIRoute({ route: (m, p, h, o) => router.add(m, p, h, o) }, auth);
  const server = createServer((req, res) => router.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth/whoami`;
  return { server, get: (token) => fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} }) };
}

describe('GET /auth/whoami', () => {
  let on: Awaited<ReturnType<typeof serve>>;
  let off: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    on = await serve(true);
    off = await serve(false);
  });
  afterAll(async () => {
    for (const s of [on, off]) await new Promise<void>((resolve) => s.server.close(() => resolve()));
  });

  it("names a token's scopes and tenant, tenant-bound admins included", async () => {
    expect(await (await on.get('ops-token-0123456789')).json()).toEqual({ authEnabled: true, authenticated: true, name: 'ops', scopes: ['query', 'admin'] });
    expect(await (await on.get('viewer-token-0123456789')).json()).toEqual({ authEnabled: true, authenticated: true, name: 'viewer', scopes: ['query'] });
    expect(await (await on.get('acme-token-0123456789')).json()).toEqual({ authEnabled: true, authenticated: true, name: 'acme-admin', scopes: ['ingest', 'admin'], tenant: 'acme' });
  });

  it('answers 200 without a token or with an unknown one, never echoing it, and is not cached', async () => {
    for (const token of [undefined, 'not-a-known-token-at-all']) {
      const res = await on.get(token);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ authEnabled: true, authenticated: false });
      if (token) expect(text).not.toContain(token);
    }
  });

  it('says auth is off when it is: no sign-in needed', async () => {
    expect(await (await off.get()).json()).toEqual({ authEnabled: false, authenticated: true });
  });
});
