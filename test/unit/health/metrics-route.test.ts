import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMetricsRoute, SLICE_LINES } from '../../../src/health/metrics-route.js';
import { sendJson } from '../../../src/server/http-router.js';

/** A server with `/metrics` (the route under test, its writes counted) and `/livez`. */
async function serve(registry: Registry, maxScrapes: number, timeoutMs: number, stallTimeoutMs = 600_000): Promise<{ server: Server; url: string; port: number; writes: () => number }> {
  const metrics = createMetricsRoute({ registry, config: { max_scrapes: maxScrapes, scrape_timeout: timeoutMs, stall_timeout: stallTimeoutMs } });
  let writes = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') return sendJson(res, 200, { status: 'alive' });
    const write = res.write.bind(res) as (chunk: string) => boolean;
    res.write = ((chunk: string) => {
      writes += 1;
      return write(chunk);
    }) as typeof res.write;
    void metrics(req, res, { correlationId: '', principal: undefined });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `http://127.0.0.1:${port}`, writes: () => writes };
}

/** A client (from `from`) that asks for /metrics and never reads the answer. */
async function stalledScrape(port: number, from = '127.0.0.2'): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from });
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

  it('renders a family of many label sets in slices, the event loop turning between them, into the same text', async () => {
    const registry = bigRegistry();
    const { server, url, writes } = await serve(registry, 2, 600_000);
    servers.push(server);
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns += 1;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const text = await (await fetch(`${url}/metrics`)).text();
    ticking = false;
    // 60,000 lines of one family: at least one write and one turn per SLICE_LINES of them.
    expect(writes()).toBeGreaterThanOrEqual(60_000 / SLICE_LINES);
    expect(turns).toBeGreaterThanOrEqual(60_000 / SLICE_LINES);
    expect(text.replace('heimdall_metrics_scrapes_in_flight 1', 'heimdall_metrics_scrapes_in_flight 0')).toBe(await registry.metrics());
  }, 60_000);

  it('answers other requests while a render waits for a slow reader; refuses a second scrape of its address and scrapes past the cap; frees the slot when the reader goes', async () => {
    const registry = bigRegistry();
    const { server, url, port, writes } = await serve(registry, 2, 600_000);
    servers.push(server);
    const stalled = await stalledScrape(port, '127.0.0.2');
    // The render stops once the reader's buffers are full: far less than the 12 MB family is written.
    await vi.waitFor(async () => expect(await registry.getSingleMetricAsString('heimdall_metrics_scrapes_in_flight')).toContain('heimdall_metrics_scrapes_in_flight 1'), { timeout: 30_000 });
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    const before = writes();
    expect(before).toBeLessThan(60_000 / SLICE_LINES);
    // One response per client address at once.
    const again = await stalledScrape(port, '127.0.0.2');
    const answer = await new Promise<string>((resolve) => {
      again.once('data', (d: Buffer) => resolve(d.toString()));
      again.resume();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    expect(answer).toContain('a /metrics response to 127.0.0.2 is in progress (one per client address at once)');
    again.destroy();
    // Another address gets the second slot; past the cap, 503.
    const other = await stalledScrape(port, '127.0.0.3');
    await vi.waitFor(async () => expect(await registry.getSingleMetricAsString('heimdall_metrics_scrapes_in_flight')).toContain('heimdall_metrics_scrapes_in_flight 2'), { timeout: 30_000 });
    const busy = await fetch(`${url}/metrics`);
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(await busy.text()).toContain('telemetry.metrics.max_scrapes is 2');
    stalled.destroy();
    other.destroy();
    await vi.waitFor(async () => expect((await fetch(`${url}/metrics`)).status).toBe(200), { timeout: 30_000 });
    const refused = await registry.getSingleMetricAsString('heimdall_metrics_scrapes_refused_total');
    expect(refused).toMatch(/^heimdall_metrics_scrapes_refused_total\{reason="busy"\} [1-9]/m);
    expect(refused).toMatch(/^heimdall_metrics_scrapes_refused_total\{reason="peer"\} 1$/m);
  }, 60_000);

  it('cuts a response whose reader takes nothing for the stall timeout, freeing its slot', async () => {
    const registry = bigRegistry();
    const { server, url, port } = await serve(registry, 1, 600_000, 300);
    servers.push(server);
    const stalled = await stalledScrape(port);
    await vi.waitFor(async () => expect(await registry.getSingleMetricAsString('heimdall_metrics_scrapes_refused_total')).toContain('heimdall_metrics_scrapes_refused_total{reason="stalled"} 1'), { timeout: 30_000 });
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
    stalled.destroy();
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

describe('/metrics with another isolate\'s families', () => {
  it('merges a family both registries hold (same samples summed, others side by side) and adds the rest once, as prom-client renders them', async () => {
    const main = new Registry();
    const other = new Registry();
    for (const r of [main, other]) {
      const calls = new Counter({ name: 'calls_total', help: 'Calls.', labelNames: ['method'] as const, registers: [r] });
      calls.inc({ method: 'Check' }, r === main ? 2 : 3);
      new Gauge({ name: 'connections', help: 'Open.', labelNames: ['server'] as const, registers: [r] }).set({ server: r === main ? 'grpc' : 'ratelimit' }, 1);
    }
    new Histogram({ name: 'only_there_seconds', help: 'Timing.', buckets: [0.1], registers: [other] }).observe(0.05);
    const families = await other.getMetricsAsJSON();
    const route = createMetricsRoute({ registry: main, config: { max_scrapes: 2, scrape_timeout: 10_000, stall_timeout: 10_000 }, extra: () => Promise.resolve(families) });
    const server = createServer((req, res) => void route(req, res, { correlationId: '', principal: undefined }));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const text = await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`)).text();
    expect(text.match(/# TYPE calls_total/g)).toHaveLength(1);
    expect(text).toContain('calls_total{method="Check"} 5');
    expect(text).toContain('connections{server="grpc"} 1\nconnections{server="ratelimit"} 1');
    expect(text).toContain('only_there_seconds_bucket{le="0.1"} 1');
    expect(text.match(/# TYPE only_there_seconds/g)).toHaveLength(1);
  });
});
