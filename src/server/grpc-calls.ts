import type { DescMethod } from '@bufbuild/protobuf';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AuthResult, Authenticator, Principal, RequiredScope } from '../auth/auth.js';
import { CORRELATION_HEADER, correlationIdFrom, runWithContext } from '../telemetry/context.js';
import type { Logger } from '../telemetry/logger.js';
import { perRegistry } from '../telemetry/metrics.js';
import { inServerSpan } from '../telemetry/spans.js';
import { asGrpcError, GrpcError } from './errors.js';
import type { CallAdmission } from './grpc-admission.js';
import type { CallContext, CallWrapper } from './grpc-service.js';

/** The status a call ends with for what it threw: a GrpcError as it is, an AgentError as its status, anything else INTERNAL (and logged). */
export function toStatus(thrown: unknown, logger: Logger, method: string): ServiceError {
  const err = asGrpcError(thrown);
  const metadata = err instanceof GrpcError && err.metadata ? err.metadata : new Metadata();
  if (err instanceof GrpcError) return Object.assign(new Error(err.message), { code: err.code, details: err.message, metadata });
  logger.error({ err, method }, 'gRPC handler failed');
  return Object.assign(new Error('internal error'), { code: status.INTERNAL, details: 'internal error', metadata });
}

/** Why a response stream's token no longer holds once the tokens were reloaded (refused now, or bound to another tenant); undefined while it holds. */
export function revoked(now: AuthResult, before: Principal): GrpcError | undefined {
  const reloaded = '(the tokens were reloaded while this stream was open)';
  if (!now.ok) return new GrpcError(now.reason === 'forbidden' ? status.PERMISSION_DENIED : status.UNAUTHENTICATED, `${now.message} ${reloaded}`);
  if (now.principal?.tenant !== before.tenant) return new GrpcError(status.PERMISSION_DENIED, `token "${before.name}" is bound to another tenant now ${reloaded}`);
  return undefined;
}

/**
 * The call families both threads count in: the main thread's gRPC server with prom-client
 * (grpcCallMetrics), the rate-limit worker's listener with plain counters; /metrics sums them.
 */
export const GRPC_CALL_FAMILIES = {
  started: { name: 'heimdall_grpc_server_started_total', help: 'gRPC calls started, by service and method.' },
  handled: { name: 'heimdall_grpc_server_handled_total', help: 'gRPC calls completed, by service, method and status code.' },
  duration: {
    name: 'heimdall_grpc_server_handling_seconds',
    help: 'Time to handle a gRPC call, by service and method.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  },
} as const;

/** The call metrics, shared by every gRPC server registered in one registry. */
export function grpcCallMetrics(registry: Registry) {
  const { started, handled, duration } = GRPC_CALL_FAMILIES;
  return perRegistry(registry, 'grpc', () => ({
    started: new Counter({ ...started, labelNames: ['grpc_service', 'grpc_method'] as const, registers: [registry] }),
    handled: new Counter({ ...handled, labelNames: ['grpc_service', 'grpc_method', 'grpc_code'] as const, registers: [registry] }),
    streams: new Gauge({ name: 'heimdall_grpc_server_streams', help: 'Long-lived response streams (Watch, WatchJob, ...) open now.', registers: [registry] }),
    streamsRefused: new Counter({
      name: 'heimdall_grpc_server_streams_refused_total',
      help: 'Streaming calls refused with RESOURCE_EXHAUSTED because server.grpc.max_streams of their service were open, by service and method.',
      labelNames: ['grpc_service', 'grpc_method'] as const,
      registers: [registry],
    }),
    duration: new Histogram({ ...duration, buckets: [...duration.buckets], labelNames: ['grpc_service', 'grpc_method'] as const, registers: [registry] }),
  }));
}

type Metrics = ReturnType<typeof grpcCallMetrics>;
/** One method's metric children and labels, built on its first call (no per-call label hashing). */
interface MethodMetrics {
  path: string;
  traced: boolean;
  spanAttributes: Record<string, string>;
  started: ReturnType<Metrics['started']['labels']>;
  duration: ReturnType<Metrics['duration']['labels']>;
  handled: Map<status, ReturnType<Metrics['handled']['labels']>>;
}

/** Per-method metric children, built on a method's first call (no per-call label hashing). */
function createMethodMetrics(metrics: Metrics, traced: (service: string) => boolean) {
  const perMethod = new Map<DescMethod, MethodMetrics>();
  return {
    metricsFor: (method: DescMethod): MethodMetrics => {
      let m = perMethod.get(method);
      if (!m) {
        const labels = { grpc_service: method.parent.typeName, grpc_method: method.name };
        m = {
          path: `/${method.parent.typeName}/${method.name}`,
          traced: traced(method.parent.typeName),
          spanAttributes: { 'rpc.system': 'grpc', 'rpc.service': method.parent.typeName, 'rpc.method': method.name },
          started: metrics.started.labels(labels),
          duration: metrics.duration.labels(labels),
          handled: new Map(),
        };
        perMethod.set(method, m);
      }
      return m;
    },
    handledFor: (m: MethodMetrics, method: DescMethod, code: status) => {
      let child = m.handled.get(code);
      if (!child) {
        child = metrics.handled.labels({ grpc_service: method.parent.typeName, grpc_method: method.name, grpc_code: status[code] });
        m.handled.set(code, child);
      }
      return child;
    },
  };
}

/** Long-lived response streams open now, by service: each service has max_streams of its own, so streams anyone may open (health Watch) never take those of services that need a token. */
function createStreamCount(metrics: Metrics, maxStreams: number) {
  const open = new Map<string, number>();
  let all = 0;
  return {
    /** Counts a stream of `method`'s service, or throws RESOURCE_EXHAUSTED past the cap; returns its release. */
    take(method: DescMethod): () => void {
      const service = method.parent.typeName;
      const n = open.get(service) ?? 0;
      if (n >= maxStreams) {
        metrics.streamsRefused.inc({ grpc_service: service, grpc_method: method.name });
        throw new GrpcError(status.RESOURCE_EXHAUSTED, `${n} ${service} streams are open, the most server.grpc.max_streams (${maxStreams}) allows a service; retry later`);
      }
      open.set(service, n + 1);
      metrics.streams.set((all += 1));
      return () => {
        open.set(service, (open.get(service) ?? 1) - 1);
        metrics.streams.set((all -= 1));
      };
    },
  };
}

/**
 * Watches tokens reloads for a response stream: the promise rejects with why once a reload revokes
 * the stream's token, and the handler is then aborted (after the status is sent). `stop` ends the
 * watch.
 */
function watchRevocation(auth: Authenticator, metadata: Metadata, scope: RequiredScope, principal: Principal, abort: () => void): { revocation: Promise<never>; stop: () => void } {
  const value = metadata.get('authorization')[0];
  const authorization = typeof value === 'string' ? value : undefined;
  let stop: () => void = () => undefined;
  const revocation = new Promise<never>((_, reject) => {
    stop = auth.onReload(() => {
      const why = revoked(auth.check(authorization, scope), principal);
      if (!why) return;
      reject(why);
      // The handler is stopped after the status is sent: its own end of the stream comes too late to replace it.
      setImmediate(abort);
    });
  });
  return { revocation, stop };
}

/**
 * A call's abort: the signal is made only when a handler asks for it (most unary calls never do);
 * it aborts when the client cancels and, for a response stream, when the server shuts down.
 * `dispose` stops listening (before grpc-js emits 'cancelled' for a finished call's stream, so a
 * completed call does not pay for an abort: a DOMException per call).
 */
function createCallAbort(call: Parameters<CallWrapper>[2], shutdown: AbortSignal | undefined) {
  let controller: AbortController | undefined;
  let aborted = false;
  const abort = (): void => {
    aborted = true;
    controller?.abort();
  };
  call.on('cancelled', abort);
  shutdown?.addEventListener('abort', abort, { once: true });
  return {
    abort,
    get signal(): AbortSignal {
      if (!controller) {
        controller = new AbortController();
        if (aborted) controller.abort();
      }
      return controller.signal;
    },
    dispose(): void {
      call.removeListener('cancelled', abort);
      shutdown?.removeEventListener('abort', abort);
    },
  };
}

/** Options for createCallWrapper. */
export interface CallWrapperOptions {
  auth: Authenticator;
  logger: Logger;
  metrics: Registry;
  /** server.grpc.max_streams: long-lived response streams per service. */
  maxStreams: number;
  /** What admission learnt of a call on its headers. */
  admissionOf(metadata: Metadata): CallAdmission | undefined;
  /** The scope a method path needs, if any. */
  scopeOf(path: string): RequiredScope | undefined;
  /** Whether calls of a service get a server span. */
  traced: (service: string) => boolean;
  /** Aborted when the server shuts down: response streams end then. */
  shutdown: AbortSignal;
}

/**
 * Creates the wrapper every handler runs in: correlation id, call metrics and server span, the
 * abort signal (client cancel; server shutdown for response streams), the per-service cap on
 * response streams (counted once authenticated, so a refused call holds none), and the end of a
 * response stream whose token a reload revoked. Errors become gRPC statuses (toStatus).
 */
export function createCallWrapper(options: CallWrapperOptions): CallWrapper {
  const { logger } = options;
  const metrics = grpcCallMetrics(options.metrics);
  const streams = createStreamCount(metrics, options.maxStreams);
  const { metricsFor, handledFor } = createMethodMetrics(metrics, options.traced);
  return async (method, metadata, call, run) => {
    const m = metricsFor(method);
    const path = m.path;
    const admitted = options.admissionOf(metadata);
    m.started.inc();
    const t0 = performance.now();
    // Server shutdown ends response streams (Watch, ...); unary and client-streaming calls finish.
    const endsAtShutdown = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
    const callAbort = createCallAbort(call, endsAtShutdown ? options.shutdown : undefined);
    const ctx: CallContext = {
      correlationId: correlationIdFrom(metadata.get(CORRELATION_HEADER)[0]),
      metadata,
      get signal() {
        return callAbort.signal;
      },
      method: path,
      requestBytes: 0,
      principal: admitted?.principal,
      releaseMessage: (message) => admitted?.releaseMessage(message),
    };
    let code = status.OK;
    let releaseStream: (() => void) | undefined;
    let watch: ReturnType<typeof watchRevocation> | undefined;
    try {
      // The token was checked on the call's headers (admission); a response stream outlives that check.
      const scope = options.scopeOf(path);
      if (endsAtShutdown && scope && ctx.principal) watch = watchRevocation(options.auth, metadata, scope, ctx.principal, callAbort.abort);
      if (endsAtShutdown) releaseStream = streams.take(method);
      const handled = runWithContext({ correlationId: ctx.correlationId }, () =>
        m.traced ? inServerSpan(path.slice(1), () => ({ ...m.spanAttributes, 'heimdall.correlation_id': ctx.correlationId }), () => run(ctx)) : run(ctx),
      );
      if (watch) void handled.catch(() => undefined); // settled after a revocation: nobody waits for it
      await (watch ? Promise.race([handled, watch.revocation]) : handled);
    } catch (err) {
      const st = runWithContext({ correlationId: ctx.correlationId }, () => toStatus(err, logger, path));
      st.metadata.set(CORRELATION_HEADER, ctx.correlationId);
      code = st.code;
      throw st;
    } finally {
      callAbort.dispose();
      watch?.stop();
      releaseStream?.();
      handledFor(m, method, code).inc();
      const seconds = (performance.now() - t0) / 1000;
      m.duration.observe(seconds);
      if (logger.isLevelEnabled('debug')) runWithContext({ correlationId: ctx.correlationId }, () => logger.debug({ method: path, code: status[code], durationMs: seconds * 1000 }, 'gRPC call'));
    }
  };
}
