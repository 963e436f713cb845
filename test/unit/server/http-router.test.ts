/** The HTTP router over a real node:http listener: what a handler's errors answer. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Authenticator } from '../../../src/auth/auth.js';
import { AgentError, invalidFields } from '../../../src/errors/agent-error.js';
import { createRouter, sendText } from '../../../src/server/http-router.js';
import { silentLogger } from '../../support/temp.js';

describe('HTTP router', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    const router = createRouter({ name: 'test', auth: {} as Authenticator, logger: silentLogger(), metrics: new Registry() });
    router.add('GET', '/busy', () => {
      throw new AgentError('unavailable', 'storage is not ready: a test; retry later', 2_000);
    });
    router.add('GET', '/missing', () => {
      throw new AgentError('not_found', 'no such thing');
    });
    router.add('GET', '/invalid', () => {
      throw invalidFields([1, 2, 3, 4].map((i) => ({ field: `events[${i}].source`, description: 'is required' })));
    });
    router.add('GET', '/broken', () => {
      throw new Error('a bug');
    });
    router.add('GET', '/ui/*', (req, res) => sendText(res, 200, `prefix ${req.url}`));
    router.add('GET', '/ui/exact', (_req, res) => sendText(res, 200, 'exact'));
    server = createServer((req, res) => router.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('answers an AgentError with its HTTP code, message and Retry-After; anything else with 500', async () => {
    const busy = await fetch(`${url}/busy`);
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('2');
    expect(await busy.json()).toEqual({ error: 'storage is not ready: a test; retry later' });
    const missing = await fetch(`${url}/missing`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('retry-after')).toBeNull();
    const invalid = await fetch(`${url}/invalid`);
    expect(invalid.status).toBe(400);
    const body = (await invalid.json()) as { error: string; violations: unknown[] };
    expect(body.error).toBe('events[1].source: is required; events[2].source: is required; events[3].source: is required; and 1 more');
    expect(body.violations).toHaveLength(4);
    const broken = await fetch(`${url}/broken`);
    expect(broken.status).toBe(500);
    expect(await broken.json()).toEqual({ error: 'internal error' });
  });

  it('serves every path under a prefix route that no exact route takes, and nothing beside it', async () => {
    expect(await (await fetch(`${url}/ui/`)).text()).toBe('prefix /ui/');
    expect(await (await fetch(`${url}/ui/traces/abc?x=1`)).text()).toBe('prefix /ui/traces/abc?x=1');
    expect(await (await fetch(`${url}/ui/exact`)).text()).toBe('exact');
    expect((await fetch(`${url}/ui`)).status).toBe(404);
    expect((await fetch(`${url}/uix/a`)).status).toBe(404);
    expect((await fetch(`${url}/ui/a`, { method: 'POST' })).status).toBe(405);
  });
});
