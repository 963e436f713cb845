import type { Authenticator, RequiredScope } from '../auth/auth.js';
import type { DescFile } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { Server as NetServer } from 'node:net';
import { Server, type ServerInterceptor } from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthReporter, HealthRegistry } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';
import type { ConnectionLimit } from './connection-limit.js';
import { createAdmission, type MethodAdmission } from './grpc-admission.js';
import { createCallWrapper, toStatus } from './grpc-calls.js';
import { toGrpcService, type ServiceImpl } from './grpc-service.js';
import { createServiceRegistry, type ServiceOptions, type ServiceRegistrar, type ServiceRegistry } from './service-registry.js';
import { drainGrpc, GRPC_JS_NO_CHANNELZ, listenGrpc } from './grpc-listen.js';

/** Options for createGrpcServer. */
export interface GrpcServerOptions {
  /**
   * The `server.grpc` slice: address (port 0 picks a free one), TLS (mTLS with a client CA;
   * plaintext when absent), max_recv_msg_size, and the connection and stream bounds and deadlines
   * (max_connections and reserved_connections as the agent fitted them to the open-file limit).
   */
  config: Config['server']['grpc'];
  /** The agent's logger; the server logs as component `grpc`. */
  logger: Logger;
  /** Registry for the call metrics (shared by every gRPC server in it). */
  metrics: Registry;
  /** Where the server reports its state, as component `grpc`. */
  health: HealthRegistry;
  /** Checks the API token of calls to services added with a scope. */
  auth: Authenticator;
  /** The services to serve, read at start (default: a registry of its own, filled by addService). */
  services?: ServiceRegistry;
}

/** The agent's one gRPC server; every gRPC service of the agent is added to it before start. */
export interface GrpcServer extends ServiceRegistrar {
  readonly name: 'grpc';
  /**
   * Adds a generated service with its implementation to the server's registry. Only before start.
   * With a scope, every call needs a token with it (UNAUTHENTICATED without a known token,
   * PERMISSION_DENIED without the scope), checked on the call's headers, before its message is read.
   */
  addService<T extends GenServiceMethods>(service: GenService<T>, impl: ServiceImpl<T>, scope?: RequiredScope, serviceOptions?: ServiceOptions): void;
  /** Full names of the services added, e.g. `grpc.health.v1.Health`. */
  serviceNames(): string[];
  /** The files that define the services added (for reflection). */
  serviceFiles(): DescFile[];
  /** Binds and starts serving. Resolves with the bound port. */
  start(): Promise<void>;
  /** The port bound, after start. */
  readonly port: number;
  /** Refuses new calls, ends open streams, waits up to graceMs for calls in flight, then closes. Safe to call twice. */
  shutdown(graceMs?: number): Promise<void>;
}

/** The services a gRPC server serves, with each method's scope and admission. */
function createServiceTable() {
  /** Scope and admission per method path, for the admission interceptor. */
  const admittance = new Map<string, MethodAdmission>();
  /** Services whose calls get no server span (ServiceOptions.traced false). */
  const untraced = new Set<string>();
  return {
    /** Records a service, its methods' scope and admission, and whether its calls are traced. */
    add(service: GenService<GenServiceMethods>, scope: RequiredScope | undefined, options: ServiceOptions | undefined): void {
      if (options?.traced === false) untraced.add(service.typeName);
      for (const method of service.methods) admittance.set(`/${service.typeName}/${method.name}`, { scope, reserve: options?.reserve });
    },
    admission: (path: string): MethodAdmission | undefined => admittance.get(path),
    traced: (service: string): boolean => !untraced.has(service),
  };
}

/** The grpc-js server with the listener's message, stream and keepalive bounds; every call goes through `interceptor`. */
function grpcJsServer(config: Config['server']['grpc'], interceptor: ServerInterceptor): Server {
  return new Server({
    'grpc.max_receive_message_length': config.max_recv_msg_size,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_concurrent_streams': config.max_concurrent_streams,
    'grpc.max_connection_idle_ms': config.idle_timeout,
    'grpc.keepalive_time_ms': config.keepalive_time,
    'grpc.keepalive_timeout_ms': config.keepalive_timeout,
    ...GRPC_JS_NO_CHANNELZ,
    interceptors: [interceptor],
  });
}

/** Creates the gRPC server component (plaintext or TLS/mTLS) with correlation ids and call metrics. */
export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const { config } = options;
  const logger = options.logger.child({ component: 'grpc' });
  const reporter: HealthReporter = options.health.register('grpc');
  const table = createServiceTable();
  const registry = options.services ?? createServiceRegistry();
  const admission = createAdmission({
    auth: options.auth,
    maxRecvMsgSize: config.max_recv_msg_size,
    messageTimeoutMs: config.message_timeout,
    methodAdmission: table.admission,
    toStatus: (err, path) => toStatus(err, logger, path),
    metrics: options.metrics,
  });
  const server = grpcJsServer(config, (definition, next) => admission.interceptor(definition, next));
  const shutdownController = new AbortController();
  const wrap = createCallWrapper({
    auth: options.auth,
    logger,
    metrics: options.metrics,
    maxStreams: config.max_streams,
    admissionOf: (metadata) => admission.of(metadata),
    scopeOf: (path) => table.admission(path)?.scope,
    traced: table.traced,
    shutdown: shutdownController.signal,
  });

  let port = 0;
  let listener: NetServer | undefined;
  let connections: ConnectionLimit | undefined;
  let state: 'new' | 'started' | 'stopped' = 'new';
  return {
    name: 'grpc',
    addService(service, impl, scope, serviceOptions) {
      if (state !== 'new') throw new Error('services must be added before the gRPC server starts');
      registry.addService(service, impl, scope, serviceOptions);
    },
    serviceNames: () => registry.names(),
    serviceFiles: () => registry.files(),
    get port() {
      return port;
    },
    async start() {
      for (const { service, impl, scope, options: serviceOptions } of registry.services()) {
        table.add(service, scope, serviceOptions);
        const { definition, handlers } = toGrpcService(service, impl, wrap);
        server.addService(definition, handlers);
      }
      ({ listener, connections, port } = await listenGrpc(server, config, options.metrics, logger));
      state = 'started';
      reporter.set('ready');
      logger.info({ address: config.address, port, tls: Boolean(config.tls), services: registry.names() }, 'gRPC server listening');
    },
    async shutdown(graceMs = 5_000) {
      if (state === 'stopped') return;
      const wasStarted = state === 'started';
      state = 'stopped';
      reporter.set('stopping');
      shutdownController.abort();
      if (wasStarted) {
        listener?.close();
        await drainGrpc(server, graceMs);
        connections?.stop();
      }
      logger.info('gRPC server stopped');
    },
  };
}
