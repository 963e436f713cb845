import type { Authenticator } from '../auth/auth.js';
import type { Logger } from '../telemetry/logger.js';
import { ADMIN_MAX_BODY_BYTES } from './body.js';
import type { ConnectRoutes } from './connect-router.js';
import type { HttpServer } from './http.js';
import type { ServiceRegistry } from './service-registry.js';

/** Options for addConnectApi. */
export interface ConnectApiOptions {
  /** The admin listener: each method is a `POST /<package>.<Service>/<Method>` route of it. */
  http: HttpServer;
  /** The agent's services; those of `package` are served. */
  services: ServiceRegistry;
  /** Checks tokens as gRPC does (the `authorization: Bearer` header). */
  auth: Authenticator;
  logger: Logger;
  /** The protobuf package served (default `heimdall.v1`). */
  package?: string;
  /** Largest request message, JSON or binary, decompressed (default ADMIN_MAX_BODY_BYTES, 1 MiB): larger is RESOURCE_EXHAUSTED. */
  maxMessageBytes?: number;
}

/** The Connect API on the admin port; a lifecycle component whose shutdown ends its response streams. */
export interface ConnectApi {
  readonly name: 'connect';
  /** Nothing to do: the routes are served by the admin listener. */
  start(): Promise<void>;
  /** Ends the response streams open (WatchJob), as the gRPC server does at shutdown. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Serves every service of `heimdall.v1` in the registry over the Connect protocol (JSON and binary,
 * unary and server streams) on the admin listener, one POST route per method, with the same
 * handlers, scopes, tenants and errors as on gRPC. The registry is read now: services are added
 * first. The Connect router (connect-router.ts, with @connectrpc/connect and connect-node: ~80
 * modules, ~10 MiB and ~150 ms of CPU) is loaded at the first Connect request, not at start.
 */
export function addConnectApi(options: ConnectApiOptions): ConnectApi {
  const logger = options.logger.child({ component: 'connect' });
  const pkg = options.package ?? 'heimdall.v1';
  const entries = options.services.services().filter((e) => e.service.file.proto.package === pkg);
  let stopped = false;
  let routes: Promise<ConnectRoutes> | undefined;
  const load = (): Promise<ConnectRoutes> =>
    (routes ??= import('./connect-router.js').then(({ createConnectRoutes }) => {
      const r = createConnectRoutes({ entries, auth: options.auth, logger, maxMessageBytes: options.maxMessageBytes ?? ADMIN_MAX_BODY_BYTES });
      if (stopped) r.shutdown();
      return r;
    }));
  for (const entry of entries) {
    for (const method of entry.service.methods) {
      const path = `/${entry.service.typeName}/${method.name}`;
      options.http.route('POST', path, async (req, res, { correlationId }) => (await load()).serve(path, req, res, correlationId), { traced: entry.options.traced ?? true });
    }
  }
  return {
    name: 'connect',
    async start() {},
    async shutdown() {
      stopped = true;
      (await routes)?.shutdown();
    },
  };
}
