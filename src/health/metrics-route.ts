import type { ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import { sendText, type HttpHandler } from '../server/http.js';

/** Options for createMetricsRoute. */
export interface MetricsRouteOptions {
  /** The registry served. */
  registry: Registry;
  /** Responses in progress at once; past it 503 with Retry-After. */
  maxScrapes: number;
  /** A response not sent within this many milliseconds is cut (its connection closed). */
  timeoutMs: number;
}

/** Resolves once `res` takes more data, or is closed. */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * The `/metrics` handler. It streams the Prometheus text one metric family at a time, giving the
 * event loop a turn between families and waiting for the client to take what was written, so
 * probes and other requests are answered while it renders and a slow reader holds one family in
 * memory, not the whole text. Past `maxScrapes` responses in progress it answers 503 with
 * Retry-After; a response not finished within `timeoutMs` is cut. Refusals are counted in
 * `heimdall_metrics_scrapes_refused_total{reason}`.
 */
export function createMetricsRoute(options: MetricsRouteOptions): HttpHandler {
  const { registry } = options;
  let inFlight = 0;
  new Gauge({
    name: 'heimdall_metrics_scrapes_in_flight',
    help: '/metrics responses in progress (this one included).',
    registers: [registry],
    collect() {
      this.set(inFlight);
    },
  });
  const refused = new Counter({ name: 'heimdall_metrics_scrapes_refused_total', help: '/metrics requests refused (busy: too many in progress) or cut (timeout).', labelNames: ['reason'] as const, registers: [registry] });

  return async (_req, res) => {
    if (inFlight >= options.maxScrapes) {
      refused.inc({ reason: 'busy' });
      res.setHeader('retry-after', '1');
      return sendText(res, 503, `${inFlight} /metrics responses are in progress (telemetry.metrics.max_scrapes is ${options.maxScrapes}); retry later\n`);
    }
    inFlight++;
    const timer = setTimeout(() => {
      refused.inc({ reason: 'timeout' });
      res.destroy();
    }, options.timeoutMs);
    res.once('close', () => {
      clearTimeout(timer);
      inFlight--;
    });
    res.writeHead(200, { 'content-type': registry.contentType });
    // The same text as registry.metrics(): families separated by a blank line, a final newline.
    let separator = '';
    for (const family of registry.getMetricsAsArray()) {
      const text = await registry.getSingleMetricAsString(family.name);
      if (res.destroyed) return;
      if (res.write(separator + text)) await nextTurn();
      else await writable(res);
      separator = '\n\n';
    }
    if (!res.destroyed) res.end('\n');
  };
}
