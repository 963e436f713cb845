import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { Authenticator } from '../auth/auth.js';
import type { Config } from '../config/schema.js';
import type { HealthReporter, HealthRegistry } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';
import { createRouter, type HttpHandler, type RouteOptions } from './http-router.js';
import { limitConnections, type ConnectionLimit } from './connection-limit.js';
import { listenOn } from './listen.js';
import { readTls } from './tls.js';

/** Options for createHttpServer. */
export interface HttpServerOptions {
  /** Component name, also the `server` label of the metrics (e.g. `admin`, `otlp_http`). */
  name: string;
  /**
   * The listener's slice (`server.admin` or `server.otlp_http`): address (port 0 picks a free one),
   * TLS (mTLS with a client CA; plaintext when absent), and the connection bounds and deadlines
   * (max_connections and reserved_connections as the agent fitted them to the open-file limit).
   */
  config: HttpListenerConfig;
  /** The agent's logger; the server logs as component `name`. */
  logger: Logger;
  /** Registry for the request metrics (shared by every HTTP listener in it). */
  metrics: Registry;
  /** Where the listener reports its state, as component `name`. */
  health: HealthRegistry;
  /** Checks the API token of requests to routes added with a scope. */
  auth: Authenticator;
}

/** What an HTTP listener's config slice holds (`server.otlp_http` has these and more). */
export type HttpListenerConfig = Config['server']['admin'] | Config['server']['otlp_http'];

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


/**
 * Responses in progress, by connection (`address:port`, the same for a TLS socket and the TCP
 * socket under it): tells the connection limit which connections are idle.
 */
function createBusyConnections() {
  const busy = new Map<string, number>();
  const connectionOf = (socket: Socket): string => `${socket.remoteAddress}:${socket.remotePort}`;
  return {
    /** Counts `res` as in progress on its connection until it closes. */
    track(req: IncomingMessage, res: ServerResponse): void {
      const connection = connectionOf(req.socket);
      busy.set(connection, (busy.get(connection) ?? 0) + 1);
      res.once('close', () => {
        const left = (busy.get(connection) ?? 1) - 1;
        if (left > 0) busy.set(connection, left);
        else busy.delete(connection);
      });
    },
    /** Whether `socket` has no response in progress. */
    idle: (socket: Socket): boolean => !busy.has(connectionOf(socket)),
  };
}

/** A Node HTTP or HTTPS (optionally mTLS) server with the listener's header, request, keep-alive and handshake deadlines. */
function nodeServer(config: HttpListenerConfig, onRequest: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const tls = config.tls ? readTls(config.tls) : undefined;
  // Node checks the header and request deadlines on a timer: often enough to close a slow client within a quarter of its deadline.
  const deadlines = { headersTimeout: config.headers_timeout, requestTimeout: config.request_timeout, connectionsCheckingInterval: Math.min(1_000, Math.ceil(config.headers_timeout / 4)), keepAliveTimeout: config.idle_timeout };
  return tls
    ? createHttps({ ...deadlines, cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.ca !== undefined, rejectUnauthorized: tls.requireClientCert, handshakeTimeout: config.handshake_timeout }, onRequest)
    : createHttp(deadlines, onRequest);
}

/** Creates an HTTP or HTTPS (optionally mTLS) listener component. */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { config } = options;
  const logger = options.logger.child({ component: options.name });
  const reporter: HealthReporter = options.health.register(options.name);
  const router = createRouter({ name: options.name, auth: options.auth, logger, metrics: options.metrics });
  const busy = createBusyConnections();

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
      const s = nodeServer(config, (req, res) => {
        busy.track(req, res);
        router.handle(req, res);
      });
      // Node's own deadlines cover slow HTTP clients (a silent connection gets no headers in time): no
      // byte checks here. At the cap, a connection without a response in progress gives its slot to
      // a peer holding fewer: a probe always gets in while others only hold connections open.
      connections = limitConnections(s, {
        name: options.name,
        maxConnections: config.max_connections,
        reserved: config.reserved_connections,
        handshakeTimeoutMs: config.handshake_timeout,
        handshakeBytes: 0,
        idleTimeoutMs: 0,
        idle: busy.idle,
        metrics: options.metrics,
      });
      server = s;
      port = await listenOn(s, { address: config.address, what: options.name, logger, errorMessage: 'HTTP listener error' });
      reporter.set('ready');
      logger.info({ address: config.address, port, tls: Boolean(config.tls) }, 'HTTP server listening');
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
