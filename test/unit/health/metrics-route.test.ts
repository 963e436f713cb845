import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMetricsRoute } from '../../../src/health/metrics-route.js';
import { sendJson } from '../../../src/server/http.js';

/** A server with `/metrics` (the route under test) and `/livez`. */
async function serve(registry: Registry, maxScrapes: number, timeoutMs: number): Promise<{ server: Server; url: string; port: number }> {
  const metrics = createMetricsRoute({ registry, maxScrapes, timeoutMs });
  const server = createServer((req, res) => {
    if (req.url === '/metrics') void metrics(req, res, { correlationId: '', principal: undefined });
    else sendJson(res, 200, { status: 'alive' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `http://127.0.0.1:${port}` };
}

/** A client that asks for /metrics and never reads the answer. */
async function stalledScrape(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause();
  socket.write('GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
  return socket;
}

/** A registry whose first family renders to about 12 MB, far more than socket buffers hold (a few MB on loopback). */
function bigRegistry(): Registry {
  const registry = new Registry();
  const big = new Gauge({ name: 'big', help: 'Many label sets.', labelNames: ['id'] as const, registers: [registry] });
  for (let i = 0; i < 60_000; i++) big.set({ id: `${i}-${'x'.repeat(180)}` }, i);
  new Gauge({ name: 'small', help: 'One value.', registers: [registry] }).set(1);
  return registry;
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

describe('/metrics route', () => {
  it('serves the same text as the registry renders', async () => {
    const registry = new Registry();
    new Gauge({ name: 'a', help: 'A "quoted" help.', labelNames: ['k'] as const, registers: [registry] }).set({ k: 'v\n"x"' }, 1);
    new Gauge({ name: 'b', help: 'B.', registers: [registry] });
    const { server, url } = await serve(registry, 2, 10_000);
    servers.push(server);
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(registry.contentType);
    // The route's own gauge counts the response being rendered: 1 then, 0 once it is sent.
    expect((await res.text()).replace('heimdall_metrics_scrapes_in_flight 1', 'heimdall_metrics_scrapes_in_flight 0')).toBe(await registry.metrics());
  });

  it('answers other requests while a render waits for a slow reader, refuses scrapes past the cap, and frees the slot when the reader goes', async () => {
    const registry = bigRegistry();
    const rendered = vi.spyOn(registry, 'getSingleMetricAsString');
    const { server, url, port } = await serve(registry, 1, 600_000);
    servers.push(server);
    const stalled = await stalledScrape(port);
    await vi.waitFor(() => expect(rendered).toHaveBeenCalledWith('big'), { timeout: 30_000 });
    // The render stops at the first family: the reader has not taken it; every other request is answered meanwhile.
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    expect(rendered.mock.calls.map((c) => c[0])).toEqual(['big']);
    const busy = await fetch(`${url}/metrics`);
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(await busy.text()).toContain('telemetry.metrics.max_scrapes is 1');
    expect(rendered.mock.calls.map((c) => c[0])).toEqual(['big']);
    stalled.destroy();
    await vi.waitFor(async () => expect((await fetch(`${url}/metrics`, { method: 'GET' })).status).toBe(200), { timeout: 30_000 });
    expect(await registry.getSingleMetricAsString('heimdall_metrics_scrapes_refused_total')).toMatch(/^heimdall_metrics_scrapes_refused_total\{reason="busy"\} [1-9]/m);
  }, 60_000);

  it('cuts a response not sent within its timeout', async () => {
    const registry = bigRegistry();
    const { server, port } = await serve(registry, 1, 200);
    servers.push(server);
    const stalled = await stalledScrape(port);
    // The slot is given back when the response is cut (the paused client does not read the close).
    await vi.waitFor(async () => expect(await registry.getSingleMetricAsString('heimdall_metrics_scrapes_refused_total')).toContain('heimdall_metrics_scrapes_refused_total{reason="timeout"} 1'), { timeout: 30_000 });
    expect(await registry.getSingleMetricAsString('heimdall_metrics_scrapes_in_flight')).toContain('heimdall_metrics_scrapes_in_flight 0');
    stalled.destroy();
  }, 60_000);
});
