/** The console's static files over a real node:http listener: headers, client routes, and what is refused. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Authenticator } from '../../../src/auth/auth.js';
import { CONSOLE_CSP, addConsoleRoutes } from '../../../src/console/console-routes.js';
import { readConsoleFiles } from '../../../src/console/console-files.js';
import { createRouter } from '../../../src/server/http-router.js';
import { silentLogger, tempDir } from '../../support/temp.js';

/** GET with the path sent exactly as given (fetch would normalise `..` away). */
function rawGet(base: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, { path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function serve(dir: string): Promise<{ server: Server; url: string }> {
  const router = createRouter({ name: 'test', auth: {} as Authenticator, logger: silentLogger(), metrics: new Registry() });
  addConsoleRoutes({ route: (m, p, h, o) => router.add(m, p, h, o) }, { dir, logger: silentLogger() });
  const server = createServer((req, res) => router.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('console routes', () => {
  const tmp = tempDir();
  const built = join(tmp.path, 'ui');
  let server: Server;
  let url: string;
  beforeAll(async () => {
    mkdirSync(join(built, 'assets'), { recursive: true });
    writeFileSync(join(built, 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(built, 'assets', 'main-ABC123.js'), 'console.log(1)');
    writeFileSync(join(built, 'assets', 'main-ABC123.css'), 'body{}');
    writeFileSync(join(tmp.path, 'secret.txt'), 'not for the browser');
    ({ server, url } = await serve(built));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    tmp.cleanup();
  });

  it('serves hashed assets cached a year and immutable, with the CSP, nosniff and no referrer', async () => {
    const js = await fetch(`${url}/ui/assets/main-ABC123.js`);
    expect(js.status).toBe(200);
    expect(await js.text()).toBe('console.log(1)');
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(js.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
    expect(js.headers.get('referrer-policy')).toBe('no-referrer');
    expect((await fetch(`${url}/ui/assets/main-ABC123.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('answers index.html, never cached, for every client route; an unknown asset is 404', async () => {
    for (const path of ['/ui/', '/ui/traces/0af7651916cd43dd8448eb211c80319c', '/ui/logs?service=x&severity=error', '/ui/index.html']) {
      const res = await fetch(`${url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(await res.text()).toContain('<title>console</title>');
    }
    expect((await fetch(`${url}/ui/assets/main-OLD.js`)).status).toBe(404);
  });

  it('redirects / and /ui to /ui/', async () => {
    for (const path of ['/', '/ui']) {
      const res = await fetch(`${url}${path}`, { redirect: 'manual' });
      expect(res.status).toBe(308);
      expect(res.headers.get('location')).toBe('/ui/');
    }
  });

  it('refuses path traversal in every spelling, and serves nothing beside the built folder', async () => {
    for (const path of ['/ui/../secret.txt', '/ui/assets/../../secret.txt', '/ui/%2e%2e/secret.txt', '/ui/assets/%2E%2E%2F..%2Fsecret.txt', '/ui/..%5csecret.txt', '/ui/./index.html', '/ui/%00', '/ui/%E0%A4%A']) {
      const res = await rawGet(url, path);
      expect(res.status, path).toBe(400);
      expect(res.body).not.toContain('not for the browser');
    }
  });

  it('answers 503 saying what to run when the console is not built', async () => {
    const empty = await serve(join(tmp.path, 'missing'));
    try {
      const res = await fetch(`${empty.url}/ui/`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: 'the web console is not built: run `npm run build`' });
    } finally {
      await new Promise<void>((resolve) => empty.server.close(() => resolve()));
    }
  });

  it('refuses a folder beyond its bounds instead of holding it in memory', () => {
    const big = join(tmp.path, 'big');
    mkdirSync(big);
    for (let i = 0; i <= 200; i += 1) writeFileSync(join(big, `f${i}.js`), '');
    expect(() => readConsoleFiles(big)).toThrow(/more than 200 files/);
  });
});
