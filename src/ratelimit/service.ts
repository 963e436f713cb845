import type { Authenticator } from '../auth/auth.js';
import type { Config } from '../config/schema.js';
import type { HealthRegistry, HealthReporter } from '../health/registry.js';
import type { GrpcServer } from '../server/grpc.js';
import type { HttpServer } from '../server/http.js';
import type { Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';
import { addJsonRoute } from './json-route.js';
import { createLimitsFile } from './limits-file.js';
import type { OverLimitSink } from './over-limit.js';
import { addRlsService } from './rls-service.js';
import type { Security } from './security.js';
import type { SignalSink } from './signals.js';
import { createWorkerClient } from './worker/client.js';
import type { MetricFamily } from './worker/protocol.js';

/** Options for createRateLimiter. */
export interface RateLimiterOptions {
  /** The `ratelimit` section: limits file, bucket bounds, key lengths, headers, Redis. */
  config: Config['ratelimit'];
  /** `server.ratelimit` (connection caps fitted): the worker's own listener, and max_forwarded. */
  listener: Config['server']['ratelimit'];
  /** `telemetry.metrics`: bounds of the metrics whose labels come from requests (descriptor values, domains). */
  metricsConfig: Config['telemetry']['metrics'];
  /** `log.level` of the worker's logger (its lines go through `logger`). */
  logLevel: string;
  /** Answers RLS on 4317 (scope `ratelimit`), forwarding to the worker. */
  grpc: GrpcServer;
  /** Gets `POST /ratelimit/json` (for clients without gRPC), forwarding to the worker. */
  http: HttpServer;
  /** The tokens the worker's listener checks (their digests, sent again after every reload). */
  auth: Authenticator;
  logger: Logger;
  health: HealthRegistry;
  /** The main registry: the limits files' families (heimdall_ratelimit_config_errors_total, heimdall_ratelimit_domains). */
  metrics: Registry;
  /** A test clock in shared memory ([0]: the buckets' monotonic milliseconds); default performance.now in the worker. */
  clock?: Float64Array | undefined;
  /** Block list and security mode, replicated to the worker on start and on every change. */
  security?: Pick<Security, 'snapshot' | 'onChange' | 'honeypotHit'> | undefined;
  /** Where each window's over-limit records go (written as events on this thread). */
  overLimit: OverLimitSink;
  /** Gets the worker's refusals and incidents (for automation rules, main thread). */
  signals?: SignalSink | undefined;
}

/** The rate-limit component: Envoy's RLS API answered by the rate-limit worker thread. */
export interface RateLimiter {
  readonly name: 'ratelimit';
  /** The worker listener's port (0: disabled, or no worker now). */
  readonly port: number;
  /** The worker registry's metric families (merged into /metrics). */
  metrics(): Promise<MetricFamily[]>;
  /** Ends the worker thread as a crash would (for tests); it is reported and restarted. */
  terminateWorker(): Promise<void>;
  start(): Promise<void>;
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * Creates the rate limiter. Its state (the buckets, local or in Redis with its breaker, the stats,
 * the security replica, the over-limit counts) lives in a worker thread with its own heap and its
 * own listener (server.ratelimit, default 127.0.0.1:8081), so ingest garbage and storage work never
 * pause it; 4317 (scope `ratelimit`) and `POST /ratelimit/json` forward their requests to it, so
 * every port answers from the same buckets. The limits files are loaded and watched here, on the
 * main thread, and each load is handed to the worker (a restarted worker starts from the last good
 * one); the worker then needs neither zod nor a YAML parser (a shorter start on one core).
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { config, security, auth } = options;
  const logger = options.logger.child({ component: 'ratelimit' });
  const reporter = options.health.register('ratelimit', { gate: 'none' });
  const reporters = new Map<string, HealthReporter>([['ratelimit', reporter]]);
  if (config.redis) reporters.set('ratelimit-redis', options.health.register('ratelimit-redis', { gate: 'none' }));
  // A reload during a worker's restart does not say `ready` over its `degraded`: the limits' state is
  // reported again once a worker serves (onServing).
  const limitsReporter: HealthReporter = {
    set: (state, reason) => void (worker.restarting() || reporter.set(state, reason)),
    get state() {
      return reporter.state;
    },
  };
  const limits = createLimitsFile({ config, logger, metrics: options.metrics, reporter: limitsReporter, onLoad: (current) => worker.post({ t: 'limits', limits: current }) });
  const worker = createWorkerClient({
    init: () => ({
      ratelimit: config,
      listener: options.listener,
      metrics: options.metricsConfig,
      logLevel: options.logLevel,
      clock: options.clock,
      tokens: auth.digests('ratelimit'),
      security: security?.snapshot(),
      limits: limits.current,
    }),
    maxForwarded: options.listener.max_forwarded,
    mainThreadNice: options.listener.main_thread_nice,
    reporters,
    overLimit: options.overLimit,
    signals: options.signals,
    honeypotHits: security && ((hit) => security.honeypotHit(hit)),
    onServing: () => limits.report(),
    logger: options.logger,
  });
  addRlsService(options.grpc, worker.answer);
  addJsonRoute(options.http, worker.answer);
  // Replicated from now on: the worker starts here (loading while the other components start),
  // and security reports its restored state before the rate limiter starts.
  const unsubscribe: Array<() => void> = [auth.onReload(() => worker.post({ t: 'tokens', tokens: auth.digests('ratelimit') }))];
  if (security) unsubscribe.push(security.onChange(() => worker.post({ t: 'security', snapshot: security.snapshot() })));
  // The worker thread exists before the limits are loaded and watched (measured: started first, they
  // made libuv's threads, which must inherit the main thread's lower priority); it gets them in a
  // message, before its listener binds, and a restarted one in its init.
  worker.prepare();
  limits.start();

  return {
    name: 'ratelimit',
    get port() {
      return worker.port;
    },
    metrics: () => worker.metrics(),
    terminateWorker: () => worker.terminate(),
    async start() {
      try {
        await worker.start();
      } catch (err) {
        // Not started, so not shut down: the limits' watch would keep the process alive.
        limits.close();
        throw err;
      }
    },
    async shutdown(graceMs) {
      for (const off of unsubscribe.splice(0)) off();
      limits.close();
      await worker.shutdown(graceMs);
      for (const r of reporters.values()) r.set('stopping');
    },
  };
}
