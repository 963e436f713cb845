import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { Authenticator } from '../auth/auth.js';
import type { Config } from '../config/schema.js';
import { splitHostPort } from '../config/units.js';
import type { HealthReporter, HealthRegistry } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';
import { createRouter, type HttpHandler, type RouteOptions } from './http-router.js';
import { limitConnections, type ConnectionLimit } from './connection-limit.js';
import { readTls, type ListenerTls } from './tls.js';


/** Options for createHttpServer. */
export interface HttpServerOptions {
  /** Component name, also the `server` label of the metrics (e.g. `admin`, `otlp_http`). */
  name: string;
  /** host:port to bind; port 0 picks a free one. */
  address: string;
  /** TLS, and mTLS with a client CA; plaintext when absent. */
  tls?: ListenerTls | undefined;
  /** The agent's logger; the server logs as component `name`. */
  logger: Logger;
  /** Registry for the request metrics (shared by every HTTP listener in it). */
  metrics: Registry;
  /** Where the listener reports its state, as component `name`. */
  health: HealthRegistry;
  /** Checks the API token of requests to routes added with a scope. */
  auth: Authenticator;
  /** Connection bounds and deadlines (ms), as the listener's config section has them. */
  limits: HttpLimits;
}

/** How many connections an HTTP listener holds, and how long it waits for slow clients (see the schema). */
export type HttpLimits = Pick<Config['server']['admin'], 'max_connections' | 'reserved_connections' | 'handshake_timeout' | 'headers_timeout' | 'request_timeout' | 'idle_timeout'>;

/** An HTTP(S) listener with exact-path routes, correlation ids and request metrics. */
export interface HttpServer {
  readonly name: string;
  /** Adds a route. Only before start. */
  route(method: string, path: string, handler: HttpHandler, options?: RouteOptions): void;
  start(): Promise<void>;
  /** The port bound, after start. */
  readonly port: number;
  /** Stops accepting, waits up to graceMs for requests in flight, then closes every connection. Safe to call twice. */
  shutdown(graceMs?: number): Promise<void>;
}



/** Creates an HTTP or HTTPS (optionally mTLS) listener component. */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const logger = options.logger.child({ component: options.name });
  const reporter: HealthReporter = options.health.register(options.name);
  const router = createRouter({ name: options.name, auth: options.auth, logger, metrics: options.metrics });

  /** Responses in progress, by connection (`address:port`, the same for a TLS socket and the TCP socket under it). */
  const busy = new Map<string, number>();
  const connectionOf = (socket: Socket): string => `${socket.remoteAddress}:${socket.remotePort}`;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const connection = connectionOf(req.socket);
    busy.set(connection, (busy.get(connection) ?? 0) + 1);
    res.once('close', () => {
      const left = (busy.get(connection) ?? 1) - 1;
      if (left > 0) busy.set(connection, left);
      else busy.delete(connection);
    });
    router.handle(req, res);
  };

  let server: Server | undefined;
  let connections: ConnectionLimit | undefined;
  let port = 0;
  let stopped = false;
  return {
    name: options.name,
    route(method, path, handler, { scope, traced = true } = {}) {
      if (server) throw new Error('routes must be added before the HTTP server starts');
      router.add(method, path, handler, { scope, traced });
    },
    get port() {
      return port;
    },
    async start() {
      const tls = options.tls ? readTls(options.tls) : undefined;
      const l = options.limits;
      // Node checks the header and request deadlines on a timer: often enough to close a slow client within a quarter of its deadline.
      const deadlines = { headersTimeout: l.headers_timeout, requestTimeout: l.request_timeout, connectionsCheckingInterval: Math.min(1_000, Math.ceil(l.headers_timeout / 4)), keepAliveTimeout: l.idle_timeout };
      const s: Server = tls
        ? createHttps({ ...deadlines, cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.ca !== undefined, rejectUnauthorized: tls.requireClientCert, handshakeTimeout: l.handshake_timeout }, onRequest)
        : createHttp(deadlines, onRequest);
      // Node's own deadlines cover slow HTTP clients (a silent connection gets no headers in time): no
      // byte checks here. At the cap, a connection without a response in progress gives its slot to
      // a peer holding fewer: a probe always gets in while others only hold connections open.
      connections = limitConnections(s, {
        name: options.name,
        maxConnections: l.max_connections,
        reserved: l.reserved_connections,
        handshakeTimeoutMs: l.handshake_timeout,
        handshakeBytes: 0,
        idleTimeoutMs: 0,
        idle: (socket) => !busy.has(connectionOf(socket)),
        metrics: options.metrics,
      });
      server = s;
      const hp = splitHostPort(options.address);
      if (!hp) throw new Error(`invalid address ${options.address}`);
      await new Promise<void>((resolve, reject) => {
        const failed = (err: Error): void => reject(new Error(`cannot listen on ${options.address} (${options.name}): ${err.message}`));
        s.once('error', failed);
        s.listen(hp.port, hp.host, () => {
          // Once listening, an accept error (EMFILE, ...) is logged; the server keeps serving.
          s.off('error', failed).on('error', (err) => logger.error({ err }, 'HTTP listener error'));
          resolve();
        });
      });
      port = (s.address() as AddressInfo).port;
      reporter.set('ready');
      logger.info({ address: options.address, port, tls: Boolean(tls) }, 'HTTP server listening');
    },
    async shutdown(graceMs = 5_000) {
      if (stopped) return;
      stopped = true;
      reporter.set('stopping');
      const s = server;
      if (!s) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      s.closeIdleConnections();
      const timer = setTimeout(() => connections?.destroyAll(), graceMs);
      await closed;
      clearTimeout(timer);
      connections?.stop();
      logger.info('HTTP server stopped');
    },
  };
}

