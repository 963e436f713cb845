import type { Registry } from 'prom-client';
import type { Authenticator } from './auth/auth.js';
import type { LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { configWarnings } from './config/warnings.js';
import { addAdminRoutes } from './health/admin-routes.js';
import { addConsoleRoutes } from './console/console-routes.js';
import { addHealthService } from './health/grpc-health.js';
import { createHealthRegistry, type HealthRegistry } from './health/registry.js';
import { logHealthTransitions } from './health/transitions.js';
import type { StatusSource } from './health/status.js';
import { addSystemService } from './health/system-service.js';
import { createAuthenticator } from './auth/auth.js';
import { addWhoAmIRoute } from './auth/whoami-route.js';
import { addEventService } from './events/service.js';
import { addQueryService } from './query/service.js';
import { overLimitEvents } from './ratelimit/over-limit-events.js';
import { createSecurity } from './ratelimit/security.js';
import { createWebhookNotifier } from './notify/webhook.js';
import { createRateLimiter, type RateLimiter } from './ratelimit/service.js';
import { createGrpcServer, type GrpcServer } from './server/grpc.js';
import { fitListeners } from './server/fd-budget.js';
import { createServiceRegistry, type ServiceRegistrar } from './server/service-registry.js';
import { addConnectApi } from './server/connect-api.js';
import { createHttpServer, type HttpServer } from './server/http.js';
import { addOtlpReceivers } from './ingest/otlp/receiver.js';
import { createPipeline, type Pipeline } from './ingest/pipeline/pipeline.js';
import { createRedMetrics } from './ingest/red-metrics.js';
import { addReflection } from './server/reflection.js';
import { jobsDeployment } from './jobs/deployment.js';
import { createJobs, type Jobs } from './jobs/jobs.js';
import { createLifecycle, type Component } from './lifecycle/lifecycle.js';
import { addJobService } from './jobs/service.js';
import { configJobs } from './jobs/spec.js';
import { ENGINE_LIBRARY } from './storage/embedded.js';
import { createStorage, type Storage } from './storage/storage.js';
import type { Logger } from './telemetry/logger.js';
import { createMetrics } from './telemetry/metrics.js';
import { createNativeRelease } from './telemetry/memory-native.js';
import { createMemoryReturn } from './telemetry/memory-return.js';
import { createSeriesLimits } from './telemetry/series-limits.js';
import { createSelfTracing } from './telemetry/tracing.js';
import { BUILD, VERSION } from './version.js';

/** Options for createAgent. */
export interface AgentOptions {
  /** The validated configuration, with its source and hash. */
  loaded: LoadedConfig;
  /** The one logger; every component takes a child of it. */
  logger: Logger;
  /** Monotonic milliseconds for the rate-limit buckets, in shared memory ([0]) so the worker thread reads it (default `performance.now`; tests stop it). */
  clock?: Float64Array | undefined;
}


/** The running agent: every component built from one configuration. */
export interface Agent {
  readonly health: HealthRegistry;
  readonly metrics: Registry;
  readonly storage: Storage;
  readonly pipeline: Pipeline;
  readonly grpc: GrpcServer;
  readonly otlpHttp: HttpServer;
  readonly admin: HttpServer;
  /** The rate limiter: its worker thread and that worker's listener (server.ratelimit). */
  readonly ratelimit: RateLimiter;
  readonly jobs: Jobs;
  /**
   * Applies a reloaded configuration: scheduled jobs are reconciled and API tokens replaced (the
   * tokens file read again); a change to any other section (or to auth.enabled) is logged as
   * needing a restart.
   */
  reload(loaded: LoadedConfig): void;
  /** Starts every component in order; on failure shuts down what started and rethrows. */
  start(): Promise<void>;
  /**
   * Graceful stop: health turns NOT_SERVING, the drain window passes, listeners stop, buffers
   * flush, storage closes. Safe to call twice (the second call waits for the first).
   */
  shutdown(): Promise<void>;
}

/** The agent-wide parts every component shares: metrics, series limits, health and the status source. */
function createCore(loaded: LoadedConfig, logger: Logger) {
  const metrics = createMetrics({ version: VERSION, build: BUILD });
  const limits = loaded.config.telemetry.metrics;
  const seriesLimits = createSeriesLimits({ config: limits, metrics, logger });
  const health = createHealthRegistry({ metrics });
  health.register('config').set('ready');
  logHealthTransitions(health, logger.child({ component: 'health' }));
  const statusSource: StatusSource = { version: VERSION, build: BUILD, startedAt: new Date(), configHash: loaded.hash, registry: health };
  return { metrics, seriesLimits, health, statusSource };
}

type Core = ReturnType<typeof createCore>;

/** Security and the rate limiter (its worker thread and listener; RLS on gRPC and the JSON route on the admin port forward to it). */
function createRateLimiting(config: Config, deps: { core: Core; grpc: GrpcServer; services: ServiceRegistrar; admin: HttpServer; storage: Storage; pipeline: Pipeline; auth: Authenticator; listener: Config['server']['ratelimit']; logger: Logger; clock: Float64Array | undefined }) {
  const { core, grpc, storage, pipeline, logger } = deps;
  const { metrics, health } = core;
  // Automation's webhooks: started before security, stopped after it (what it told last is delivered).
  const notifier = createWebhookNotifier({ logger, metrics });
  const security = createSecurity({ config: config.ratelimit.security, redis: config.ratelimit.redis, services: deps.services, storage, pipeline, notify: notifier.notify, logger, metrics, health });
  const ratelimit = createRateLimiter({
    config: config.ratelimit,
    listener: deps.listener,
    metricsConfig: config.telemetry.metrics,
    logLevel: config.log.level,
    clock: deps.clock,
    security,
    overLimit: overLimitEvents(pipeline, config.ratelimit.over_limit_window, logger),
    signals: (s) => security.automation.signals(s),
    grpc,
    http: deps.admin,
    auth: deps.auth,
    logger,
    health,
    metrics,
  });
  return { notifier, security, ratelimit };
}

/**
 * Applies a reloaded configuration to a running agent: scheduled jobs reconciled, tokens reloaded;
 * other changed sections are logged as needing a restart.
 */
function reloader(config: Config, parts: { jobs: Jobs; auth: Authenticator; logger: Logger }) {
  return (next: LoadedConfig): void => {
    parts.jobs.reconcile(configJobs(next.config.jobs));
    parts.auth.reload(next.config.auth);
    const changed = (Object.keys(next.config) as Array<keyof Config>).filter((k) => k !== 'jobs' && k !== 'auth' && JSON.stringify(next.config[k]) !== JSON.stringify(config[k]));
    if (next.config.auth.enabled !== config.auth.enabled) changed.push('auth');
    parts.logger.info({ configHash: next.hash, jobs: next.config.jobs.scheduled.length }, 'configuration reloaded: scheduled jobs reconciled, tokens reloaded');
    if (changed.length > 0) parts.logger.warn({ sections: changed }, 'configuration sections changed that apply only after a restart');
  };
}

/** Builds the agent's components from the configuration; nothing listens until start. */
export function createAgent(options: AgentOptions): Agent {
  const { loaded, logger } = options;
  const { config } = loaded;
  const core = createCore(loaded, logger);
  const { metrics, health } = core;
  const storage = createStorage({ config: config.storage, logger, health, metrics });
  const auth = createAuthenticator(config.auth, { logger, health, metrics });
  // Connection caps fitted to the open-file limit; nothing listens until start.
  const listeners = fitListeners(config.server, logger);
  // One list of services, served by gRPC (4317) and, for heimdall.v1, by the Connect API on the admin port.
  const services = createServiceRegistry();
  const grpc = createGrpcServer({ config: listeners.grpc, logger, metrics, health, auth, services });
  const otlpHttp = createHttpServer({ name: 'otlp_http', config: listeners.otlp_http, logger, metrics, health, auth });
  const pipeline = createPipeline({ config: config.ingest, storage, logger, metrics, health });
  addOtlpReceivers({
    pipeline,
    grpc,
    http: otlpHttp,
    config: config.server.otlp_http,
    ingest: config.ingest,
    red: config.ingest.red_metrics.enabled ? createRedMetrics({ config: config.ingest.red_metrics, metrics, limits: core.seriesLimits }) : undefined,
    metrics,
    logger,
  });
  addEventService({ services, pipeline, config: config.events, ingest: config.ingest, metrics });
  addQueryService({ services, storage, config: config.query, metrics });
  const admin = createHttpServer({ name: 'admin', config: listeners.admin, logger, metrics, health, auth });
  const { notifier, security, ratelimit } = createRateLimiting(config, { core, grpc, services, admin, storage, pipeline, auth, listener: listeners.ratelimit, logger, clock: options.clock });
  const jobs = createJobs({ config: config.jobs, query: config.query, ...jobsDeployment(config), storage, pipeline, logger, metrics, health });
  addJobService(services, jobs);
  addHealthService(grpc, health);
  addSystemService(services, core.statusSource);
  addReflection(grpc);
  addAdminRoutes(admin, core.statusSource, metrics, config.telemetry.metrics, () => ratelimit.metrics());
  addConsoleRoutes(admin, { logger });
  addWhoAmIRoute(admin, auth);
  // Read last: every service is added by now.
  const connect = addConnectApi({ http: admin, services, auth, logger });

  const tracing = config.telemetry.tracing;
  // Admin first so /livez answers while storage connects; data listeners last. Shutdown runs in
  // reverse: listeners stop, then the pipeline flushes its batches, then storage closes. The memory
  // return (a full collection once quiet after a load) runs once everything else has started.
  const release = createNativeRelease({ logger, unmap: storage.mode === 'embedded' ? [ENGINE_LIBRARY] : [] });
  const components: Component[] = [
    ...(tracing.enabled ? [createSelfTracing({ config: tracing, logger })] : []),
    ...[admin, auth, storage, pipeline, notifier, security, ratelimit, jobs, connect, grpc, otlpHttp, createMemoryReturn({ logger, release })],
  ];
  const lifecycle = createLifecycle({ components, config: config.shutdown, beginShutdown: () => health.beginShutdown(), logger });
  return {
    health,
    metrics,
    storage,
    pipeline,
    grpc,
    otlpHttp,
    admin,
    ratelimit,
    jobs,
    reload: reloader(config, { jobs, auth, logger }),
    async start() {
      logger.info({ version: VERSION, build: BUILD, configHash: loaded.hash, source: loaded.source ?? 'defaults' }, 'starting Heimdall');
      for (const warning of configWarnings(config)) logger.warn(`configuration: ${warning}`);
      if (await lifecycle.start()) logger.info({ ready: health.readiness().ready }, 'Heimdall started');
    },
    shutdown: () => lifecycle.shutdown(),
  };
}
