// A realistic trace set, reproducible from a seed: 8 services of a shop (each with its Kubernetes
// resource attributes), traces of 5-30 spans starting at an HTTP server span of the frontend, with
// HTTP client/server pairs between services and database spans (PostgreSQL, Redis, MongoDB) carrying
// their semantic-convention attributes, log-normal durations nested in their parents, ~3% errors with
// exception events, and a few other span events. Encoded as OTLP ExportTraceServiceRequests, one
// resource (service instance) per request, as an SDK's exporter sends them.
import { create, toBinary } from '@bufbuild/protobuf';
import { ExportTraceServiceRequestSchema } from '../dist/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
// mulberry32, shared with the tests (Node 24 strips its types), so every run stores the same spans.
import { prng } from '../test/support/prng.ts';

const SERVICES = [
  { name: 'frontend', version: '2.14.3', lang: 'nodejs', sdk: '2.0.1', routes: ['GET /', 'GET /product/{id}', 'POST /cart', 'GET /cart', 'POST /checkout', 'GET /api/recommendations'] },
  { name: 'checkout', version: '1.9.0', lang: 'go', sdk: '1.37.0', routes: ['POST /checkout/place-order'], db: 'postgresql' },
  { name: 'cart', version: '3.2.1', lang: 'dotnet', sdk: '1.12.0', routes: ['GET /cart/{userId}', 'POST /cart/{userId}/items', 'DELETE /cart/{userId}'], db: 'redis' },
  { name: 'product-catalog', version: '1.21.4', lang: 'go', sdk: '1.37.0', routes: ['GET /products', 'GET /products/{id}'], db: 'postgresql' },
  { name: 'payment', version: '0.8.12', lang: 'nodejs', sdk: '2.0.1', routes: ['POST /charge'] },
  { name: 'shipping', version: '1.4.0', lang: 'rust', sdk: '0.30.0', routes: ['POST /quote', 'POST /ship-order'] },
  { name: 'currency', version: '1.0.7', lang: 'cpp', sdk: '1.21.0', routes: ['GET /convert'] },
  { name: 'recommendation', version: '2.3.0', lang: 'python', sdk: '1.36.0', routes: ['GET /recommendations'], db: 'mongodb' },
];
/** Which services each service calls (a call tree of depth <= 3). */
const CALLS = {
  frontend: ['product-catalog', 'cart', 'checkout', 'recommendation', 'currency'],
  checkout: ['cart', 'payment', 'shipping', 'currency', 'product-catalog'],
  recommendation: ['product-catalog'],
  cart: [],
  'product-catalog': [],
  payment: [],
  shipping: ['currency'],
  currency: [],
};
const QUERIES = {
  postgresql: [
    ['SELECT', 'products', 'SELECT id, name, description, price_units, price_nanos, categories FROM products WHERE id = $1'],
    ['SELECT', 'products', 'SELECT id, name, price_units FROM products WHERE categories @> $1 ORDER BY name LIMIT 20'],
    ['INSERT', 'orders', 'INSERT INTO orders (id, user_id, total_units, currency, created_at) VALUES ($1, $2, $3, $4, now())'],
    ['UPDATE', 'inventory', 'UPDATE inventory SET reserved = reserved + $1 WHERE product_id = $2'],
  ],
  redis: [
    ['HGETALL', undefined, 'HGETALL cart:{userId}'],
    ['HSET', undefined, 'HSET cart:{userId} {productId} {quantity}'],
    ['EXPIRE', undefined, 'EXPIRE cart:{userId} 3600'],
  ],
  mongodb: [['find', 'recommendations', '{"find":"recommendations","filter":{"userId":"?"},"limit":10}']],
};
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
];

const str = (key, value) => ({ key, value: { value: { case: 'stringValue', value } } });
const int = (key, value) => ({ key, value: { value: { case: 'intValue', value: BigInt(value) } } });

/**
 * Generates `traces` traces (seeded) ending at `endMs`, spread over the `spreadMs` before it. Returns
 * the OTLP request bodies (at most `perRequest` spans each) and the number of spans.
 */
export function traceSet({ traces = 2000, seed = 16, endMs = Date.now(), spreadMs = 600_000, perRequest = 512 } = {}) {
  const rnd = prng(seed);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const hex = (bytes) => {
    const b = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  };
  const logNormalMs = (medianMs, sigma) => medianMs * Math.exp(sigma * Math.sqrt(-2 * Math.log(rnd() || 1e-9)) * Math.cos(2 * Math.PI * rnd()));
  // Two pods per service, each its own resource.
  const pods = SERVICES.flatMap((s) =>
    [0, 1].map((p) => {
      const suffix = `${Math.floor(rnd() * 0xffffffff).toString(36).slice(0, 5)}-${Math.floor(rnd() * 0xffffff).toString(36).slice(0, 5)}`;
      const pod = `${s.name}-7d9f8b${p}c5-${suffix}`;
      const uid = [8, 4, 4, 4, 12].map((n) => [...hex(n / 2)].map((x) => x.toString(16).padStart(2, '0')).join('')).join('-');
      return {
        service: s,
        spans: [],
        attributes: [
          str('service.name', s.name),
          str('service.version', s.version),
          str('service.namespace', 'shop'),
          str('service.instance.id', uid),
          str('deployment.environment.name', 'production'),
          str('telemetry.sdk.name', 'opentelemetry'),
          str('telemetry.sdk.language', s.lang),
          str('telemetry.sdk.version', s.sdk),
          str('host.name', pod),
          str('k8s.namespace.name', 'shop'),
          str('k8s.pod.name', pod),
          str('k8s.pod.uid', uid),
          str('k8s.deployment.name', s.name),
          str('k8s.node.name', `ip-10-0-${1 + p}-${10 + Math.floor(rnd() * 200)}.eu-west-1.compute.internal`),
          str('k8s.cluster.name', 'prod-eu-west-1'),
          str('cloud.provider', 'aws'),
          str('cloud.region', 'eu-west-1'),
        ],
      };
    }),
  );
  const podOf = (name) => pick(pods.filter((p) => p.service.name === name));
  let spanCount = 0;
  for (let t = 0; t < traces; t++) {
    const traceId = hex(16);
    const start = BigInt(Math.floor(endMs - rnd() * spreadMs)) * 1_000_000n + BigInt(Math.floor(rnd() * 1e6));
    const budget = 5 + Math.floor(rnd() * 26);
    const spans = [];
    const failed = rnd() < 0.03;
    /** Adds a span and returns it; durations in ms, start in ns. */
    const add = (pod, fields) => {
      const span = { traceId, spanId: hex(8), ...fields };
      pod.spans.push(span);
      spans.push(span);
      return span;
    };
    const serve = (service, parent, startNs, durMs, depth) => {
      const pod = podOf(service.name);
      const route = pick(service.routes);
      const [method, path] = route.split(' ');
      const status = failed && depth > 0 && rnd() < 0.5 ? 503 : failed && depth === 0 ? 500 : rnd() < 0.01 ? 404 : 200;
      const end = startNs + BigInt(Math.round(durMs * 1e6));
      const server = add(pod, {
        parentSpanId: parent?.spanId ?? new Uint8Array(0),
        name: route,
        kind: 2,
        startTimeUnixNano: startNs,
        endTimeUnixNano: end,
        attributes: [
          str('http.request.method', method),
          str('url.path', path.replace('{id}', String(1000 + Math.floor(rnd() * 500))).replace('{userId}', `u${Math.floor(rnd() * 5000)}`)),
          str('url.scheme', depth === 0 ? 'https' : 'http'),
          str('http.route', path),
          int('http.response.status_code', status),
          str('server.address', depth === 0 ? 'shop.example.com' : service.name),
          int('server.port', depth === 0 ? 443 : 8080),
          str('network.protocol.version', depth === 0 ? '2' : '1.1'),
          ...(depth === 0 ? [str('user_agent.original', pick(AGENTS)), str('client.address', `203.0.113.${Math.floor(rnd() * 254) + 1}`)] : []),
        ],
        status: status >= 500 ? { code: 2, message: '' } : { code: 0 },
        scope: { name: `@opentelemetry/instrumentation-http`, version: '0.57.0' },
      });
      if (status >= 500 && depth === 0) {
        server.events = [{ timeUnixNano: end - 1000n, name: 'exception', attributes: [str('exception.type', 'UpstreamError'), str('exception.message', `upstream ${pick(CALLS[service.name] ?? ['service'])} answered 503`), str('exception.stacktrace', `UpstreamError: upstream answered 503\n    at handle (/app/src/${service.name}/handler.js:${40 + Math.floor(rnd() * 200)}:13)\n    at process.processTicksAndRejections (node:internal/process/task_queues:105:5)`)] }];
      }
      let cursor = startNs + BigInt(Math.round(durMs * 0.05 * 1e6));
      const room = durMs * 0.9;
      if (service.db && spans.length < budget) {
        const [op, collection, text] = pick(QUERIES[service.db]);
        const d = Math.min(room / 3, logNormalMs(service.db === 'redis' ? 0.4 : 2.5, 0.7));
        add(pod, {
          parentSpanId: server.spanId,
          name: collection ? `${op} ${collection}` : op,
          kind: 3,
          startTimeUnixNano: cursor,
          endTimeUnixNano: cursor + BigInt(Math.round(d * 1e6)),
          attributes: [
            str('db.system', service.db),
            str('db.namespace', service.db === 'redis' ? '0' : 'shop'),
            str('db.operation.name', op),
            ...(collection ? [str('db.collection.name', collection)] : []),
            str(rnd() < 0.5 ? 'db.query.text' : 'db.statement', text),
            str('server.address', `${service.db}.shop.svc.cluster.local`),
            int('server.port', service.db === 'postgresql' ? 5432 : service.db === 'redis' ? 6379 : 27017),
          ],
          status: { code: 0 },
          scope: { name: `instrumentation-${service.db}`, version: '0.45.1' },
        });
        cursor += BigInt(Math.round(d * 1e6));
      }
      for (const callee of CALLS[service.name] ?? []) {
        if (spans.length + 2 > budget || rnd() < 0.3) continue;
        const target = SERVICES.find((s) => s.name === callee);
        const d = Math.min(room / 2, logNormalMs(8, 0.8));
        const route = pick(target.routes);
        const [method, path] = route.split(' ');
        const client = add(pod, {
          parentSpanId: server.spanId,
          name: method,
          kind: 3,
          startTimeUnixNano: cursor,
          endTimeUnixNano: cursor + BigInt(Math.round(d * 1e6)),
          attributes: [str('http.request.method', method), str('url.full', `http://${callee}:8080${path.replace('{id}', String(1000 + Math.floor(rnd() * 500))).replace('{userId}', `u${Math.floor(rnd() * 5000)}`)}`), str('server.address', callee), int('server.port', 8080), int('http.response.status_code', 200)],
          status: { code: 0 },
          scope: { name: `@opentelemetry/instrumentation-http`, version: '0.57.0' },
        });
        if (rnd() < 0.05) client.events = [{ timeUnixNano: cursor + 100_000n, name: 'http.retry', attributes: [int('http.request.resend_count', 1)] }];
        serve(target, client, cursor + 200_000n, d * 0.9, depth + 1);
        cursor += BigInt(Math.round(d * 1e6 * 0.6));
      }
      return server;
    };
    serve(SERVICES[0], undefined, start, logNormalMs(45, 0.6), 0);
    spanCount += spans.length;
  }
  const bodies = [];
  for (const pod of pods) {
    for (let i = 0; i < pod.spans.length; i += perRequest) {
      const chunk = pod.spans.slice(i, i + perRequest);
      const byScope = new Map();
      for (const { scope, ...span } of chunk) {
        const key = `${scope.name}@${scope.version}`;
        if (!byScope.has(key)) byScope.set(key, { scope, spans: [] });
        byScope.get(key).spans.push(span);
      }
      const req = create(ExportTraceServiceRequestSchema, { resourceSpans: [{ resource: { attributes: pod.attributes }, scopeSpans: [...byScope.values()] }] });
      bodies.push(Buffer.from(toBinary(ExportTraceServiceRequestSchema, req)));
    }
  }
  return { bodies, spans: spanCount };
}
