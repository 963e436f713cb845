import type { Registry } from 'prom-client';
import type { LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { configWarnings } from './config/warnings.js';
import { addAdminRoutes } from './health/admin-routes.js';
import { addHealthService } from './health/grpc-health.js';
import { createHealthRegistry, type HealthRegistry } from './health/registry.js';
import { logHealthTransitions } from './health/transitions.js';
import type { StatusSource } from './health/status.js';
import { addSystemService } from './health/system-service.js';
import { createAuthenticator } from './auth/auth.js';
import { addEventService } from './events/service.js';
import { addQueryService } from './query/service.js';
import { createOverLimitReporter } from './ratelimit/over-limit.js';
import { createSecurity } from './ratelimit/security.js';
import { createRateLimiter } from './ratelimit/service.js';
import { redisTargetOf } from './redis/client.js';
import { createGrpcServer, type GrpcServer } from './server/grpc.js';
import { fitConnectionCaps, openFileLimit } from './server/fd-budget.js';
import { createHttpServer, type HttpServer } from './server/http.js';
import { addOtlpReceivers } from './ingest/otlp/receiver.js';
import { createPipeline, type Pipeline } from './ingest/pipeline/pipeline.js';
import { createRedMetrics } from './ingest/red-metrics.js';
import { addReflection } from './server/reflection.js';
import { createJobs, type Jobs } from './jobs/jobs.js';
import { addJobService } from './jobs/service.js';
import { configJobs } from './jobs/spec.js';
import { createStorage, schemaContextFor, type Storage } from './storage/storage.js';
import type { Logger } from './telemetry/logger.js';
import { createMetrics } from './telemetry/metrics.js';
import { createSeriesLimits } from './telemetry/series-limits.js';
import { createSelfTracing } from './telemetry/tracing.js';
import { BUILD, VERSION } from './version.js';

/** Options for createAgent. */
export interface AgentOptions {
  /** The validated configuration, with its source and hash. */
  loaded: LoadedConfig;
  /** The one logger; every component takes a child of it. */
  logger: Logger;
  /** Monotonic milliseconds for the rate-limit buckets (default `performance.now`; tests stop it). */
  clock?: (() => number) | undefined;
}

/** A component as the agent drives it: started in order, shut down in reverse. */
interface Component {
  readonly name: string;
  start(): Promise<void>;
  shutdown(graceMs?: number): Promise<void>;
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

/** Builds the agent's components from the configuration; nothing listens until start. */
export function createAgent(options: AgentOptions): Agent {
  const { config, hash } = options.loaded;
  const logger = options.logger;
  const metrics = createMetrics({ version: VERSION, build: BUILD });
  const metricLimits = config.telemetry.metrics;
  const seriesLimits = createSeriesLimits({ maxLabelLength: metricLimits.max_label_length, maxFamilyBytes: metricLimits.max_family_size, metrics, logger });
  const health = createHealthRegistry({ metrics });
  health.register('config').set('ready');
  logHealthTransitions(health, logger.child({ component: 'health' }));
  const statusSource: StatusSource = { version: VERSION, build: BUILD, startedAt: new Date(), configHash: hash, registry: health };

  const storage = createStorage({ config: config.storage, logger, health, metrics });
  const auth = createAuthenticator(config.auth, { logger, health, metrics });
  const server = config.server;
  // Connection caps that leave server.fd_reserve file descriptors to the agent's own files.
  const limit = openFileLimit();
  const cap = (l: { max_connections: number; reserved_connections: number }) => ({ max: l.max_connections, reserved: l.reserved_connections });
  const fitted = fitConnectionCaps({ grpc: cap(server.grpc), otlp_http: cap(server.otlp_http), admin: cap(server.admin) }, limit, server.fd_reserve);
  if (fitted.lowered) {
    const each = (f: (c: { max: number; reserved: number }) => number) => Object.fromEntries(Object.entries(fitted.caps).map(([k, c]) => [k, f(c)]));
    logger.warn({ openFileLimit: limit, fdReserve: server.fd_reserve, maxConnections: each((c) => c.max), reservedConnections: each((c) => c.reserved) }, 'max_connections (and reserved_connections with them) lowered to fit the open-file limit (ulimit -n) minus server.fd_reserve');
  }
  const fit = (name: keyof typeof fitted.caps) => ({ max_connections: fitted.caps[name].max, reserved_connections: fitted.caps[name].reserved });
  const grpc = createGrpcServer({ address: server.grpc.address, tls: server.grpc.tls, maxRecvMsgSize: server.grpc.max_recv_msg_size, limits: { ...server.grpc, ...fit('grpc') }, logger, metrics, health, auth });
  const otlpHttp = createHttpServer({ name: 'otlp_http', address: server.otlp_http.address, tls: server.otlp_http.tls, limits: { ...server.otlp_http, ...fit('otlp_http') }, logger, metrics, health, auth });
  const pipeline = createPipeline({ config: config.ingest, storage, logger, metrics, health });
  addOtlpReceivers({
    pipeline,
    grpc,
    http: otlpHttp,
    config: server.otlp_http,
    ingest: config.ingest,
    red: config.ingest.red_metrics.enabled ? createRedMetrics({ metrics, maxSeries: config.ingest.red_metrics.max_series, limits: seriesLimits }) : undefined,
    metrics,
    logger,
  });
  addEventService({ grpc, pipeline, config: config.events, ingest: config.ingest, metrics });
  addQueryService({ grpc, storage, config: config.query, metrics });
  const admin = createHttpServer({ name: 'admin', address: server.admin.address, tls: server.admin.tls, limits: { ...server.admin, ...fit('admin') }, logger, metrics, health, auth });
  const redis = config.ratelimit.redis;
  const security = createSecurity({
    initialMode: config.ratelimit.security.mode,
    elevatedFactor: config.ratelimit.security.elevated_factor,
    lockdownAllow: config.ratelimit.security.lockdown_allow,
    approvalTtlMs: config.ratelimit.security.approval_ttl,
    incidentThreshold: config.ratelimit.security.incident_threshold,
    redis: redis && { target: redisTargetOf(redis), keyPrefix: redis.key_prefix },
    grpc,
    storage,
    pipeline,
    logger,
    metrics,
    health,
  });
  const ratelimit = createRateLimiter({
    now: options.clock,
    security,
    overLimit: createOverLimitReporter({ pipeline, windowMs: config.ratelimit.over_limit_window, maxKeys: config.ratelimit.over_limit_max_keys, logger }),
    configPath: config.ratelimit.config_path,
    maxKeys: config.ratelimit.max_keys,
    cacheBytes: config.ratelimit.cache_size,
    maxKeyLength: config.ratelimit.max_key_length,
    maxBucketKeyLength: config.ratelimit.max_bucket_key_length,
    legacyHeaders: config.ratelimit.legacy_headers,
    seriesLimits,
    maxSeries: metricLimits.max_series,
    redis: redis && {
      ...redisTargetOf(redis),
      timeoutMs: redis.timeout,
      failureMode: redis.failure_mode,
      breakerFailures: redis.breaker.failures,
      breakerCooldownMs: redis.breaker.cooldown,
      keyPrefix: redis.key_prefix,
    },
    grpc,
    http: admin,
    logger,
    metrics,
    health,
  });
  const jobsRedis = config.jobs.redis ?? (redis && { ...redis, key_prefix: 'heimdall:jobs:' });
  const serverStorage = Boolean(config.storage.clickhouse.url) && config.storage.mode !== 'embedded';
  const jobs = createJobs({
    configJobs: configJobs(config.jobs),
    instance: config.jobs.instance,
    maxConcurrent: config.jobs.max_concurrent,
    queueSize: config.jobs.queue_size,
    maxScheduledRuns: config.jobs.max_scheduled_runs,
    exportDir: config.jobs.export_dir,
    exportMaxBytes: config.jobs.export_max_size,
    tenantExportMaxBytes: config.jobs.tenant_export_max_size,
    maxSubmittedPerTenant: config.jobs.max_submitted_per_tenant,
    tenantMaxTimeoutMs: config.jobs.tenant_max_timeout,
    query: config.query,
    httpCheckAllowedNetworks: config.jobs.http_check.allowed_networks,
    leaseTtlMs: config.jobs.lease_ttl,
    redis: jobsRedis && { target: redisTargetOf(jobsRedis), keyPrefix: jobsRedis.key_prefix },
    sharedStorage: serverStorage,
    dataPaths: [...(serverStorage ? [] : [config.storage.embedded.path]), ...(config.ingest.ack === 'queued' ? [config.ingest.queue.path] : []), config.jobs.export_dir],
    schema: schemaContextFor(config.storage),
    storage,
    pipeline,
    logger,
    metrics,
    health,
  });
  addJobService(grpc, jobs);
  addHealthService(grpc, health);
  addSystemService(grpc, statusSource);
  addReflection(grpc);
  addAdminRoutes(admin, statusSource, metrics, { maxScrapes: metricLimits.max_scrapes, timeoutMs: metricLimits.scrape_timeout, stallTimeoutMs: metricLimits.stall_timeout, scope: metricLimits.scope === 'none' ? undefined : metricLimits.scope });

  const components: Component[] = [];
  if (config.telemetry.tracing.enabled) {
    components.push(createSelfTracing({ endpoint: config.telemetry.tracing.endpoint, sampleRatio: config.telemetry.tracing.sample_ratio, logger }));
  }
  // Admin first so /livez answers while storage connects; data listeners last. Shutdown runs in
  // reverse: listeners stop, then the pipeline flushes its batches, then storage closes.
  components.push(admin, auth, storage, pipeline, security, ratelimit, jobs, grpc, otlpHttp);
  const started: Component[] = [];
  let stopping: Promise<void> | undefined;
  // One deadline for the whole shutdown: each component gets what is left of it, minus a reserve
  // for the components after it, so the process exits within shutdown.timeout.
  let deadline = Number.POSITIVE_INFINITY;

  const stopAll = async (): Promise<void> => {
    const order = [...started].reverse();
    started.length = 0;
    for (const [i, c] of order.entries()) {
      const left = deadline - Date.now() - (order.length - i - 1) * 250;
      try {
        await c.shutdown(Math.max(250, Math.min(left, config.shutdown.timeout)));
      } catch (err) {
        logger.error({ err, component: c.name }, 'component did not shut down cleanly');
      }
    }
  };

  return {
    health,
    metrics,
    storage,
    pipeline,
    grpc,
    otlpHttp,
    admin,
    jobs,
    reload(next) {
      jobs.reconcile(configJobs(next.config.jobs));
      auth.reload(next.config.auth);
      const changed = (Object.keys(next.config) as Array<keyof Config>).filter((k) => k !== 'jobs' && k !== 'auth' && JSON.stringify(next.config[k]) !== JSON.stringify(config[k]));
      if (next.config.auth.enabled !== config.auth.enabled) changed.push('auth');
      logger.info({ configHash: next.hash, jobs: next.config.jobs.scheduled.length }, 'configuration reloaded: scheduled jobs reconciled, tokens reloaded');
      if (changed.length > 0) logger.warn({ sections: changed }, 'configuration sections changed that apply only after a restart');
    },
    async start() {
      logger.info({ version: VERSION, build: BUILD, configHash: hash, source: options.loaded.source ?? 'defaults' }, 'starting Heimdall');
      for (const warning of configWarnings(config)) logger.warn(`configuration: ${warning}`);
      try {
        for (const c of components) {
          // A signal during start: stop starting; shutdown() stops what did start.
          if (stopping) return;
          await c.start();
          started.push(c);
        }
      } catch (err) {
        health.beginShutdown();
        await stopAll();
        throw err;
      }
      logger.info({ ready: health.readiness().ready }, 'Heimdall started');
    },
    shutdown() {
      stopping ??= (async () => {
        deadline = Date.now() + config.shutdown.timeout - 500;
        health.beginShutdown();
        logger.info({ drainMs: config.shutdown.drain }, 'shutting down: health is NOT_SERVING, draining');
        await new Promise((resolve) => setTimeout(resolve, config.shutdown.drain));
        await stopAll();
        logger.info('Heimdall stopped');
      })();
      return stopping;
    },
  };
}
