import type { ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Counter, Gauge, type Metric, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { sendText, type HttpHandler } from '../server/http-router.js';

/** Options for createMetricsRoute. */
export interface MetricsRouteOptions {
  /** The registry served. */
  registry: Registry;
  /**
   * Its bounds, as `telemetry.metrics` has them: `max_scrapes` responses in progress at once (past
   * it 503 with Retry-After); `scrape_timeout` ms for a response to be sent, else it is cut (its
   * connection closed); `stall_timeout` ms a client may take nothing of it before it is cut.
   */
  config: Pick<Config['telemetry']['metrics'], 'max_scrapes' | 'scrape_timeout' | 'stall_timeout'>;
  /** Families of another isolate's registry (the rate-limit worker's), read once per scrape and merged in by family name. */
  extra?: (() => Promise<ExtraFamily[]>) | undefined;
}

/** A family as prom-client's getMetricsAsJSON gives it. */
export type ExtraFamily = MetricObjectWithValues<MetricValue<string>>;

/** Lines of one metric family rendered at once: the event loop gets a turn between slices. */
export const SLICE_LINES = 1_000;

/** A registered metric as the registry holds it (its typings say MetricObject; it is the metric itself). */
type Family = Pick<Metric, 'get'>;
type MetricData = Awaited<ReturnType<Metric['get']>>;
/**
 * prom-client's text rendering of one metric's data (`Registry#getMetricsAsString`, public in its
 * code but not in its typings): the same text as `registry.metrics()`, so slices of a family's
 * values join into exactly the family's text.
 */
type Renderer = { getMetricsAsString(metric: { get(): Promise<MetricData> }): Promise<string> };

/** A sample's identity in its family: its metric name (histogram parts) and its labels. */
const sampleKey = (v: MetricValue<string> & { metricName?: string }): string => JSON.stringify([v.metricName ?? '', Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : 1))]);

/**
 * One family's samples from two registries: samples with the same name and labels are summed
 * (counters and histograms count one thing from two threads), the others kept side by side, so
 * the family appears once.
 */
export function mergeFamily(data: ExtraFamily, extra: ExtraFamily): ExtraFamily {
  const values = new Map<string, MetricValue<string>>();
  for (const v of [...data.values, ...extra.values]) {
    const key = sampleKey(v);
    const seen = values.get(key);
    values.set(key, seen ? { ...seen, value: seen.value + v.value } : v);
  }
  return { ...data, values: [...values.values()] };
}

/** The families to render: the registry's (each merged with the extra family of its name), then the extra families it lacks. */
function familiesOf(registry: Registry, extra: ExtraFamily[]): Family[] {
  const byName = new Map(extra.map((f) => [f.name, f]));
  const own = (registry.getMetricsAsArray() as unknown as Array<Family & { name: string }>).map((metric): Family => {
    const other = byName.get(metric.name);
    byName.delete(metric.name);
    return other ? { get: async () => mergeFamily(await metric.get(), other) } : metric;
  });
  return [...own, ...[...byName.values()].map((f): Family => ({ get: () => Promise.resolve(f as MetricData) }))];
}

/** Resolves once `res` takes more data (`drained`), is closed, or `stallMs` pass first (`stalled`). */
function writable(res: ServerResponse, stallMs: number): Promise<'drained' | 'closed' | 'stalled'> {
  return new Promise((resolve) => {
    const done = (how: 'drained' | 'closed' | 'stalled') => (): void => {
      clearTimeout(timer);
      res.off('drain', drain);
      res.off('close', close);
      resolve(how);
    };
    const drain = done('drained');
    const close = done('closed');
    const timer = setTimeout(done('stalled'), stallMs);
    res.on('drain', drain);
    res.on('close', close);
  });
}

/**
 * The text of one metric family in slices of SLICE_LINES lines, joined as `registry.metrics()`
 * joins them (HELP and TYPE once, before the first slice).
 */
async function* familyText(registry: Registry, metric: Family): AsyncGenerator<string> {
  const renderer = registry as unknown as Renderer;
  const data = await metric.get();
  const values = data.values;
  for (let i = 0; i === 0 || i < values.length; i += SLICE_LINES) {
    const text = await renderer.getMetricsAsString({ get: () => Promise.resolve({ ...data, values: values.slice(i, i + SLICE_LINES) }) });
    // Later slices drop their HELP and TYPE lines, keeping the newline before their first sample.
    yield i === 0 ? text : text.slice(text.indexOf('\n', text.indexOf('\n') + 1));
  }
}

/**
 * The `/metrics` handler. It streams the Prometheus text in slices of at most SLICE_LINES lines,
 * giving the event loop a turn between slices and waiting for the client to take what was
 * written, so probes and other requests are answered while it renders (even a family of many
 * label sets) and a slow reader holds one slice in memory, not the whole text. At most
 * `max_scrapes` responses are in progress, one per client address; past that 503 with Retry-After.
 * A response is cut when its client takes nothing of it for `stall_timeout` (a reader that
 * stopped frees its slot for Prometheus) or when it is not sent within `scrape_timeout`. Refusals and
 * cuts are counted in `heimdall_metrics_scrapes_refused_total{reason}`.
 */
export function createMetricsRoute(options: MetricsRouteOptions): HttpHandler {
  const { registry } = options;
  /** Responses in progress, by client address. */
  const inFlight = new Set<string>();
  new Gauge({
    name: 'heimdall_metrics_scrapes_in_flight',
    help: '/metrics responses in progress (this one included).',
    registers: [registry],
    collect() {
      this.set(inFlight.size);
    },
  });
  const refused = new Counter({
    name: 'heimdall_metrics_scrapes_refused_total',
    help: '/metrics requests refused (busy: too many in progress; peer: one of the client address in progress) or cut (timeout: not sent in time; stalled: the client took nothing for stall_timeout).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const busy = (res: ServerResponse, reason: 'busy' | 'peer', text: string): void => {
    refused.inc({ reason });
    res.setHeader('retry-after', '1');
    sendText(res, 503, text);
  };

  return async (req, res) => {
    const peer = req.socket.remoteAddress ?? '';
    if (inFlight.has(peer)) return busy(res, 'peer', `a /metrics response to ${peer} is in progress (one per client address at once); retry later\n`);
    if (inFlight.size >= options.config.max_scrapes) return busy(res, 'busy', `${inFlight.size} /metrics responses are in progress (telemetry.metrics.max_scrapes is ${options.config.max_scrapes}); retry later\n`);
    inFlight.add(peer);
    const free = (): void => {
      clearTimeout(timer);
      inFlight.delete(peer);
    };
    // The slot is free as soon as the response is cut (its 'close' comes a turn later).
    const cut = (reason: 'timeout' | 'stalled'): void => {
      free();
      refused.inc({ reason });
      res.destroy();
    };
    const timer = setTimeout(() => cut('timeout'), options.config.scrape_timeout);
    res.once('close', free);
    const extra = (await options.extra?.()) ?? [];
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': registry.contentType });
    // The same text as registry.metrics(): families separated by a blank line, a final newline.
    let separator = '';
    for (const metric of familiesOf(registry, extra)) {
      for await (const text of familyText(registry, metric)) {
        if (res.destroyed) return;
        if (!res.write(separator + text)) {
          const how = await writable(res, options.config.stall_timeout);
          if (how === 'stalled') return cut('stalled');
          if (how === 'closed') return;
        }
        separator = '';
        // A turn of the event loop after every slice: a drain can come without one (a socket that
        // takes the write at once), and requests must not wait for the whole text.
        await nextTurn();
      }
      separator = '\n\n';
    }
    if (!res.destroyed) res.end('\n');
  };
}
