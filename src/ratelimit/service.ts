import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthRegistry } from '../health/registry.js';
import type { GrpcServer } from '../server/grpc.js';
import type { HttpServer } from '../server/http.js';
import type { Logger } from '../telemetry/logger.js';
import type { SeriesLimits } from '../telemetry/series-limits.js';
import { createBuckets } from './backends.js';
import { createRateLimitCheck } from './check.js';
import { addJsonRoute } from './json-route.js';
import { createLimitsFile } from './limits-file.js';
import type { OverLimitReporter } from './over-limit.js';
import { addRlsService } from './rls-service.js';
import type { Security } from './security.js';
import { createLimitStats } from './stats.js';

/** Options for createRateLimiter. */
export interface RateLimiterOptions {
  /** The `ratelimit` section: limits file, bucket bounds, key lengths, headers, Redis. */
  config: Config['ratelimit'];
  /** `telemetry.metrics.max_series`: label sets of each request-labelled metric family at most (the rest count as __overflow__). */
  maxSeries: number;
  /** Bounds on the metrics whose labels come from requests (descriptor values, domains). */
  seriesLimits: SeriesLimits;
  /** Gets the RLS service. */
  grpc: GrpcServer;
  /** Gets `POST /ratelimit/json` (for clients without gRPC). */
  http: HttpServer;
  logger: Logger;
  metrics: Registry;
  health: HealthRegistry;
  /** Monotonic milliseconds (tests pass a fake clock); default performance.now. */
  now?: (() => number) | undefined;
  /** Block list and security mode, consulted before any limit. */
  security?: Pick<Security, 'check'> | undefined;
  /** Where refusals are counted as aggregated events; started and shut down with the rate limiter. */
  overLimit?: OverLimitReporter | undefined;
}

/** The rate-limit component: Envoy's RLS API over refilling token buckets, with hot-reloaded limits. */
export interface RateLimiter {
  readonly name: 'ratelimit';
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Creates the rate limiter from its parts, as envoyproxy/ratelimit keeps them apart: the watched
 * limits file (config), the buckets (limiter: local, or Redis with its breaker) and one check
 * (service), which the RLS gRPC service (scope `ratelimit`) and `POST /ratelimit/json` answer with.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { config, metrics } = options;
  const logger = options.logger.child({ component: 'ratelimit' });
  const reporter = options.health.register('ratelimit', { gate: 'none' });
  const now = options.now ?? (() => performance.now());
  const limits = createLimitsFile({ config, logger, metrics, reporter });
  const stats = createLimitStats(metrics, options.seriesLimits, options.maxSeries);
  const buckets = createBuckets({ config, now, logger: options.logger, metrics, health: options.health });
  const check = createRateLimitCheck({ config, limits, buckets, stats, security: options.security, overLimit: options.overLimit });
  addRlsService(options.grpc, check);
  addJsonRoute(options.http, check);

  return {
    name: 'ratelimit',
    async start() {
      options.overLimit?.start();
      limits.start();
    },
    async shutdown() {
      limits.close();
      await buckets.close();
      options.overLimit?.shutdown();
      reporter.set('stopping');
    },
  };
}
