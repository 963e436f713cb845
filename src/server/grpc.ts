import type { AuthResult, Authenticator, Principal, RequiredScope } from '../auth/auth.js';
import type { DescFile, DescMethod } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { Metadata, Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthReporter, HealthRegistry } from '../health/registry.js';
import { CORRELATION_HEADER, correlationIdFrom, runWithContext } from '../telemetry/context.js';
import { perRegistry } from '../telemetry/metrics.js';
import { inServerSpan } from '../telemetry/spans.js';
import type { Logger } from '../telemetry/logger.js';
import { splitHostPort } from '../config/units.js';
import { limitConnections, type ConnectionLimit } from './connection-limit.js';
import { GrpcError } from './errors.js';
import { createAdmission, type MethodAdmission, type Reserve } from './grpc-admission.js';
import { toGrpcService, type CallContext, type CallWrapper, type ServiceImpl } from './grpc-service.js';
import { readTls, type ListenerTls } from './tls.js';

/** Options for createGrpcServer. */
export interface GrpcServerOptions {
  /** host:port to bind; port 0 picks a free one. */
  address: string;
  /** TLS, and mTLS with a client CA; plaintext when absent. */
  tls?: ListenerTls | undefined;
  /** Largest request message accepted, in bytes (after decompression). */
  maxRecvMsgSize: number;
  /** The agent's logger; the server logs as component `grpc`. */
  logger: Logger;
  /** Registry for the call metrics (shared by every gRPC server in it). */
  metrics: Registry;
  /** Where the server reports its state, as component `grpc`. */
  health: HealthRegistry;
  /** Checks the API token of calls to services added with a scope. */
  auth: Authenticator;
  /** Connection and stream bounds and deadlines (ms), as `server.grpc` has them. */
  limits: GrpcLimits;
}

/** How many connections and streams the gRPC server holds, and how long it waits for quiet peers (see the schema). */
export type GrpcLimits = Pick<
  Config['server']['grpc'],
  'max_connections' | 'reserved_connections' | 'handshake_timeout' | 'max_concurrent_streams' | 'max_streams' | 'idle_timeout' | 'keepalive_time' | 'keepalive_timeout' | 'message_timeout'
>;

/** How a service's calls are admitted, beyond its scope. */
export interface ServiceOptions {
  /**
   * Reserves memory for one request message of up to `bytes` (server.grpc.max_recv_msg_size)
   * before grpc-js reads it, for each message (see createAdmission). Once read, the reservation is
   * settled to the message's size, and given back once the handler took the message
   * (CallContext.releaseMessage) or the call ended.
   */
  reserve?: Reserve;
  /** Whether calls get a server span (default true). */
  traced?: boolean;
}

/** Bytes a client sends first on HTTP/2: the connection preface (24) and a SETTINGS frame header (9). */
const HTTP2_OPENING_BYTES = 33;

/** The agent's one gRPC server; every gRPC service of the agent is added to it before start. */
export interface GrpcServer {
  readonly name: 'grpc';
  /**
   * Adds a generated service with its implementation. Only before start. With a scope, every call
   * needs a token with it (UNAUTHENTICATED without a known token, PERMISSION_DENIED without the
   * scope), checked on the call's headers, before its message is read.
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


function toStatus(err: unknown, logger: Logger, method: string): ServiceError {
  const metadata = err instanceof GrpcError && err.metadata ? err.metadata : new Metadata();
  if (err instanceof GrpcError) return Object.assign(new Error(err.message), { code: err.code, details: err.message, metadata });
  logger.error({ err, method }, 'gRPC handler failed');
  return Object.assign(new Error('internal error'), { code: status.INTERNAL, details: 'internal error', metadata });
}

/** Why a response stream's token no longer holds once the tokens were reloaded (refused now, or bound to another tenant); undefined while it holds. */
function revoked(now: AuthResult, before: Principal): GrpcError | undefined {
  const reloaded = '(the tokens were reloaded while this stream was open)';
  if (!now.ok) return new GrpcError(now.reason === 'forbidden' ? status.PERMISSION_DENIED : status.UNAUTHENTICATED, `${now.message} ${reloaded}`);
  if (now.principal?.tenant !== before.tenant) return new GrpcError(status.PERMISSION_DENIED, `token "${before.name}" is bound to another tenant now ${reloaded}`);
  return undefined;
}

/** The call metrics, shared by every gRPC server registered in one registry. */
function grpcMetrics(registry: Registry) {
  return perRegistry(registry, 'grpc', () => ({
    started: new Counter({ name: 'heimdall_grpc_server_started_total', help: 'gRPC calls started, by service and method.', labelNames: ['grpc_service', 'grpc_method'] as const, registers: [registry] }),
    handled: new Counter({
      name: 'heimdall_grpc_server_handled_total',
      help: 'gRPC calls completed, by service, method and status code.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_code'] as const,
      registers: [registry],
    }),
    streams: new Gauge({ name: 'heimdall_grpc_server_streams', help: 'Long-lived response streams (Watch, WatchJob, ...) open now.', registers: [registry] }),
    streamsRefused: new Counter({
      name: 'heimdall_grpc_server_streams_refused_total',
      help: 'Streaming calls refused with RESOURCE_EXHAUSTED because server.grpc.max_streams of their service were open, by service and method.',
      labelNames: ['grpc_service', 'grpc_method'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'heimdall_grpc_server_handling_seconds',
      help: 'Time to handle a gRPC call, by service and method.',
      labelNames: ['grpc_service', 'grpc_method'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  }));
}

/** Creates the gRPC server component (plaintext or TLS/mTLS) with correlation ids and call metrics. */
export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const logger = options.logger.child({ component: 'grpc' });
  const reporter: HealthReporter = options.health.register('grpc');
  const limits = options.limits;
  const server = new Server({
    'grpc.max_receive_message_length': options.maxRecvMsgSize,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_concurrent_streams': limits.max_concurrent_streams,
    'grpc.max_connection_idle_ms': limits.idle_timeout,
    'grpc.keepalive_time_ms': limits.keepalive_time,
    'grpc.keepalive_timeout_ms': limits.keepalive_timeout,
    // Defined below; resolved per call.
    interceptors: [(definition, next) => admission.interceptor(definition, next)],
  });
  const shutdownController = new AbortController();
  const services: GenService<GenServiceMethods>[] = [];
  const { started, handled, duration, streams, streamsRefused } = grpcMetrics(options.metrics);
  /**
   * Long-lived response streams open now, by service: each service has limits.max_streams of its
   * own, so streams anyone may open (health Watch) never take those of services that need a token.
   */
  const openStreams = new Map<string, number>();
  let allStreams = 0;

  // Per-method metric children and labels, built on a method's first call (no per-call label hashing).
  type MethodMetrics = { path: string; traced: boolean; spanAttributes: Record<string, string>; started: ReturnType<typeof started.labels>; duration: ReturnType<typeof duration.labels>; handled: Map<status, ReturnType<typeof handled.labels>> };
  const perMethod = new Map<DescMethod, MethodMetrics>();
  const metricsFor = (method: DescMethod): MethodMetrics => {
    let m = perMethod.get(method);
    if (!m) {
      const labels = { grpc_service: method.parent.typeName, grpc_method: method.name };
      m = {
        path: `/${method.parent.typeName}/${method.name}`,
        traced: !untraced.has(method.parent.typeName),
        spanAttributes: { 'rpc.system': 'grpc', 'rpc.service': method.parent.typeName, 'rpc.method': method.name },
        started: started.labels(labels),
        duration: duration.labels(labels),
        handled: new Map(),
      };
      perMethod.set(method, m);
    }
    return m;
  };
  const handledFor = (m: MethodMetrics, method: DescMethod, code: status): ReturnType<typeof handled.labels> => {
    let child = m.handled.get(code);
    if (!child) {
      child = handled.labels({ grpc_service: method.parent.typeName, grpc_method: method.name, grpc_code: status[code] });
      m.handled.set(code, child);
    }
    return child;
  };

  /** Scope and admission per method path, for the admission interceptor. */
  const admittance = new Map<string, MethodAdmission>();
  /** Services whose calls get no server span (ServiceOptions.traced false). */
  const untraced = new Set<string>();
  const admissionRefused = new Counter({
    name: 'heimdall_grpc_server_admission_refused_total',
    help: 'Calls refused by admission before their handler ran, by code (UNAUTHENTICATED, PERMISSION_DENIED; UNAVAILABLE: no memory to read the message; DEADLINE_EXCEEDED: the message not whole within server.grpc.message_timeout).',
    labelNames: ['grpc_code'] as const,
    registers: [options.metrics],
  });
  const admission = createAdmission({
    auth: options.auth,
    maxRecvMsgSize: options.maxRecvMsgSize,
    messageTimeoutMs: limits.message_timeout,
    methodAdmission: (path) => admittance.get(path),
    toStatus: (err, path) => {
      const st = toStatus(err, logger, path);
      admissionRefused.inc({ grpc_code: status[st.code] });
      return st;
    },
  });
  new Gauge({
    name: 'heimdall_grpc_server_admission_waiting',
    help: 'Calls waiting for memory to read their request message.',
    registers: [options.metrics],
    collect() {
      this.set(admission.waiting);
    },
  });

  const wrap: CallWrapper = async (method: DescMethod, metadata, call, run) => {
    const m = metricsFor(method);
    const path = m.path;
    const admitted = admission.of(metadata);
    m.started.inc();
    const t0 = performance.now();
    // The abort signal is made only when a handler asks for it: most unary calls never do.
    let controller: AbortController | undefined;
    let aborted = false;
    const abort = (): void => {
      aborted = true;
      controller?.abort();
    };
    call.on('cancelled', abort);
    // Server shutdown ends response streams (Watch, ...); unary and client-streaming calls finish.
    const endsAtShutdown = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
    if (endsAtShutdown) shutdownController.signal.addEventListener('abort', abort, { once: true });
    const ctx: CallContext = {
      correlationId: correlationIdFrom(metadata.get(CORRELATION_HEADER)[0]),
      metadata,
      get signal() {
        if (!controller) {
          controller = new AbortController();
          if (aborted) controller.abort();
        }
        return controller.signal;
      },
      method: path,
      requestBytes: 0,
      principal: admitted?.principal,
      releaseMessage: (message) => admitted?.releaseMessage(message),
    };
    let code = status.OK;
    let counted: string | undefined;
    // A response stream outlives its token check: it ends when a reload revokes the token.
    let revocation: Promise<never> | undefined;
    let stopWatching: (() => void) | undefined;
    try {
      // The token was checked on the call's headers (the interceptor); a response stream outlives that check.
      const scope = admittance.get(path)?.scope;
      const principal = ctx.principal;
      if (endsAtShutdown && scope && principal) {
        const value = metadata.get('authorization')[0];
        const authorization = typeof value === 'string' ? value : undefined;
        revocation = new Promise<never>((_, reject) => {
          stopWatching = options.auth.onReload(() => {
            const why = revoked(options.auth.check(authorization, scope), principal);
            if (!why) return;
            reject(why);
            // The handler is stopped after the status is sent: its own end of the stream comes too late to replace it.
            setImmediate(abort);
          });
        });
      }
      // Counted once the call is authenticated: a refused call never holds a stream.
      if (endsAtShutdown) {
        const service = method.parent.typeName;
        const open = openStreams.get(service) ?? 0;
        if (open >= limits.max_streams) {
          streamsRefused.inc({ grpc_service: service, grpc_method: method.name });
          throw new GrpcError(status.RESOURCE_EXHAUSTED, `${open} ${service} streams are open, the most server.grpc.max_streams (${limits.max_streams}) allows a service; retry later`);
        }
        openStreams.set(service, open + 1);
        counted = service;
        streams.set((allStreams += 1));
      }
      const handled = runWithContext({ correlationId: ctx.correlationId }, () =>
        m.traced ? inServerSpan(path.slice(1), () => ({ ...m.spanAttributes, 'heimdall.correlation_id': ctx.correlationId }), () => run(ctx)) : run(ctx),
      );
      if (revocation) void handled.catch(() => undefined); // settled after a revocation: nobody waits for it
      await (revocation ? Promise.race([handled, revocation]) : handled);
    } catch (err) {
      const st = runWithContext({ correlationId: ctx.correlationId }, () => toStatus(err, logger, path));
      st.metadata.set(CORRELATION_HEADER, ctx.correlationId);
      code = st.code;
      throw st;
    } finally {
      // grpc-js emits 'cancelled' when a finished call's stream closes: stop listening first, so a
      // completed call does not pay for an abort (a DOMException per call).
      call.removeListener('cancelled', abort);
      stopWatching?.();
      if (endsAtShutdown) shutdownController.signal.removeEventListener('abort', abort);
      if (counted !== undefined) {
        openStreams.set(counted, (openStreams.get(counted) ?? 1) - 1);
        streams.set((allStreams -= 1));
      }
      handledFor(m, method, code).inc();
      const seconds = (performance.now() - t0) / 1000;
      m.duration.observe(seconds);
      if (logger.isLevelEnabled('debug')) runWithContext({ correlationId: ctx.correlationId }, () => logger.debug({ method: path, code: status[code], durationMs: seconds * 1000 }, 'gRPC call'));
    }
  };

  let port = 0;
  let listener: NetServer | undefined;
  let connections: ConnectionLimit | undefined;
  let state: 'new' | 'started' | 'stopped' = 'new';
  return {
    name: 'grpc',
    addService(service, impl, scope, serviceOptions) {
      if (state !== 'new') throw new Error('services must be added before the gRPC server starts');
      if (serviceOptions?.traced === false) untraced.add(service.typeName);
      for (const method of service.methods) admittance.set(`/${service.typeName}/${method.name}`, { scope, reserve: serviceOptions?.reserve });
      const { definition, handlers } = toGrpcService(service, impl, wrap);
      server.addService(definition, handlers);
      services.push(service);
    },
    serviceNames: () => services.map((s) => s.typeName),
    serviceFiles: () => [...new Set(services.map((s) => s.file))],
    get port() {
      return port;
    },
    async start() {
      const creds = options.tls
        ? (() => {
            const tls = readTls(options.tls);
            const ssl = ServerCredentials.createSsl(tls.ca ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.requireClientCert);
            // grpc-js has no option for the TLS handshake deadline (Node's default is 120 s); its
            // credentials hand these options to http2.createSecureServer (test/integration/connections.test.ts checks it holds).
            const serverOptions = ssl._getConstructorOptions();
            if (serverOptions) serverOptions.handshakeTimeout = limits.handshake_timeout;
            return ssl;
          })()
        : ServerCredentials.createInsecure();
      // The listening socket is ours and its connections are handed to grpc-js: grpc-js leaves
      // Nagle's algorithm on, and with the peer's delayed ACK a response split over two segments
      // waits up to 40 ms (measured: p99 6 ms -> 0.7 ms at 650 calls/s).
      const hostPort = splitHostPort(options.address);
      if (!hostPort) throw new Error(`cannot listen on ${options.address} (gRPC): not host:port`);
      const injector = server.createConnectionInjector(creds);
      // A socket refused by the connection limit is already destroyed when this listener runs.
      listener = createNetServer({ noDelay: true, keepAlive: true }, (socket) => void (socket.destroyed || injector.injectConnection(socket)));
      const net = listener;
      // A client must open HTTP/2 (or start TLS) within the handshake deadline; one that then sends
      // nothing at all, not even keepalive acks, for idle_timeout is dropped.
      connections = limitConnections(net, {
        name: 'grpc',
        maxConnections: limits.max_connections,
        reserved: limits.reserved_connections,
        handshakeTimeoutMs: limits.handshake_timeout,
        handshakeBytes: HTTP2_OPENING_BYTES,
        idleTimeoutMs: limits.idle_timeout,
        metrics: options.metrics,
      });
      port = await new Promise<number>((resolve, reject) => {
        const failed = (err: Error): void => reject(new Error(`cannot listen on ${options.address} (gRPC): ${err.message}`));
        net.once('error', failed);
        net.listen(hostPort.port, hostPort.host, () => {
          // Once listening, an accept error (EMFILE, ...) is logged; the server keeps serving.
          net.off('error', failed).on('error', (err) => logger.error({ err }, 'gRPC listener error'));
          const address = net.address();
          resolve(typeof address === 'object' && address ? address.port : hostPort.port);
        });
      });
      state = 'started';
      reporter.set('ready');
      logger.info({ address: options.address, port, tls: Boolean(options.tls), services: services.map((s) => s.typeName) }, 'gRPC server listening');
    },
    async shutdown(graceMs = 5_000) {
      if (state === 'stopped') return;
      const wasStarted = state === 'started';
      state = 'stopped';
      reporter.set('stopping');
      shutdownController.abort();
      if (wasStarted) {
        listener?.close();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        connections?.stop();
      }
      logger.info('gRPC server stopped');
    },
  };
}
