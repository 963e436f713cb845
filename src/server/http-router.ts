import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Authenticator, Principal, Scope } from '../auth/auth.js';
import { AgentError } from '../errors/agent-error.js';
import { CORRELATION_HEADER, correlationIdFrom, runWithContext } from '../telemetry/context.js';
import type { Logger } from '../telemetry/logger.js';
import { perRegistry } from '../telemetry/metrics.js';
import { inServerSpan } from '../telemetry/spans.js';
import { HTTP_CODE } from './errors.js';

/** Handles one request; the response is complete when the promise resolves. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, ctx: { correlationId: string; principal: Principal | undefined }) => Promise<void> | void;

/** How a route is served beyond its handler. */
export interface RouteOptions {
  /** Requests need `authorization: Bearer <token>` with this scope (401 without a known token, 403 without the scope). */
  scope?: Scope | undefined;
  /** Whether requests get a server span (default true); telemetry ingestion is not traced, or an agent tracing itself into itself would loop. */
  traced?: boolean;
}

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Writes a plain-text response. */
export function sendText(res: ServerResponse, code: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(code, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
/** The request metrics, shared by every HTTP listener registered in one registry. */
function httpMetrics(registry: Registry) {
  return perRegistry(registry, 'http', () => ({
    requests: new Counter({ name: 'heimdall_http_server_requests_total', help: 'HTTP requests answered, by listener, route, method and status code.', labelNames: ['server', 'route', 'method', 'code'] as const, registers: [registry] }),
    duration: new Histogram({
      name: 'heimdall_http_server_request_duration_seconds',
      help: 'Time to answer an HTTP request, by listener, route and method.',
      labelNames: ['server', 'route', 'method'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  }));
}

/** Exact-path routes of one listener, and the request handling around them. */
export interface HttpRouter {
  /** Adds a route for `path`; a path ending in `/*` (e.g. `/ui/*`) matches every path under that prefix that no exact route takes. */
  add(method: string, path: string, handler: HttpHandler, options?: RouteOptions): void;
  /**
   * Answers a request: correlation id (in and out), request metrics and debug log, 404 / 405
   * (with `allow`), the route's scope (401 / 403), a server span for traced routes; a handler's
   * AgentError answers its HTTP code (with Retry-After when it says when), anything else 500.
   */
  handle(req: IncomingMessage, res: ServerResponse): void;
}

/** Creates the router of the listener `name` (the `server` label of its metrics). */
export function createRouter(options: { name: string; auth: Authenticator; logger: Logger; metrics: Registry }): HttpRouter {
  const { name, logger } = options;
  type Route = { handler: HttpHandler; scope: Scope | undefined; traced: boolean };
  const routes = new Map<string, Map<string, Route>>();
  /** Prefix routes (`/ui/*` is stored as `/ui/`), longest first. */
  const prefixes: string[] = [];
  /** The route pattern serving `path` (its metrics label), when any. */
  const match = (path: string): string | undefined => {
    if (routes.has(path)) return path;
    const prefix = prefixes.find((p) => path.startsWith(p));
    return prefix === undefined ? undefined : `${prefix}*`;
  };
  const { requests, duration } = httpMetrics(options.metrics);

  /** Runs a matched route: its scope, then its handler (in a span when traced). */
  const run = (req: IncomingMessage, res: ServerResponse, entry: Route, path: string, correlationId: string): void => {
    let principal: Principal | undefined;
    if (entry.scope) {
      const result = options.auth.check(req.headers.authorization, entry.scope);
      if (!result.ok) {
        if (result.reason === 'unauthenticated') res.setHeader('www-authenticate', 'Bearer');
        req.resume();
        return sendJson(res, result.reason === 'forbidden' ? 403 : 401, { error: result.message });
      }
      principal = result.principal;
    }
    const method = req.method ?? 'GET';
    const call = async (): Promise<void> => entry.handler(req, res, { correlationId, principal });
    (entry.traced ? inServerSpan(`${method} ${path}`, () => ({ 'http.request.method': method, 'http.route': path, 'heimdall.correlation_id': correlationId }), call) : call()).catch((err: unknown) => {
      if (res.headersSent) {
        logger.error({ err, path }, 'HTTP handler failed');
        return res.destroy();
      }
      if (!(err instanceof AgentError)) {
        logger.error({ err, path }, 'HTTP handler failed');
        return sendJson(res, 500, { error: 'internal error' });
      }
      if (err.retryAfterMs !== undefined) res.setHeader('retry-after', String(Math.ceil(err.retryAfterMs / 1000)));
      sendJson(res, HTTP_CODE[err.code], { error: err.message, ...(err.violations?.length ? { violations: err.violations } : {}) });
    });
  };

  return {
    add(method, path, handler, { scope, traced = true } = {}) {
      const byMethod = routes.get(path) ?? new Map<string, Route>();
      byMethod.set(method.toUpperCase(), { handler, scope, traced });
      routes.set(path, byMethod);
      if (path.endsWith('/*') && !prefixes.includes(path.slice(0, -1))) {
        prefixes.push(path.slice(0, -1));
        prefixes.sort((a, b) => b.length - a.length);
      }
    },
    handle(req, res) {
      const correlationId = correlationIdFrom(req.headers[CORRELATION_HEADER]);
      res.setHeader(CORRELATION_HEADER, correlationId);
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const matched = match(path);
      const byMethod = matched === undefined ? undefined : routes.get(matched);
      const route = matched ?? 'unmatched';
      const method = req.method ?? 'GET';
      const stop = duration.startTimer({ server: name, route, method });
      res.on('finish', () => {
        const seconds = stop();
        requests.inc({ server: name, route, method, code: String(res.statusCode) });
        runWithContext({ correlationId }, () => logger.debug({ method, path, code: res.statusCode, durationMs: seconds * 1000 }, 'HTTP request'));
      });
      const entry = byMethod?.get(method) ?? (method === 'HEAD' ? byMethod?.get('GET') : undefined);
      runWithContext({ correlationId }, () => {
        if (!byMethod) return sendJson(res, 404, { error: `no route for ${path}` });
        if (!entry) {
          res.setHeader('allow', [...byMethod.keys()].join(', '));
          return sendJson(res, 405, { error: `method ${method} not allowed on ${path}` });
        }
        run(req, res, entry, route, correlationId);
      });
    },
  };
}
