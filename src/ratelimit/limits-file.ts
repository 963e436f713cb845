import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { watchPath, type PathWatch } from '../config/watch.js';
import type { HealthReporter } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';
import { loadRateLimitConfig, RateLimitConfigError } from './config.js';
import type { DescriptorNode, Limit, RateLimitConfig } from './limits.js';

/** Options for createLimitsFile. */
export interface LimitsFileOptions {
  /** `config_path`: a descriptor file or a directory of them (envoyproxy/ratelimit format), none: no limits; `redis`: without it, a file with `backend: redis` limits is refused; `security.automation.honeypots`: the names a `honeypot:` may give. */
  config: Pick<Config['ratelimit'], 'config_path' | 'redis'> & { security: Pick<Config['ratelimit']['security'], 'automation'> };
  logger: Logger;
  metrics: Registry;
  /** Reports `ready`, or `degraded` with the reason while a changed file is refused. */
  reporter: HealthReporter;
  /** Called with the limits of every load that succeeds (the rate-limit worker gets them). */
  onLoad?: ((limits: RateLimitConfig) => void) | undefined;
}

/** The configured limits, reloaded when their files change. */
export interface LimitsFile {
  /** The limits now: the last valid load (none before start or without a path). */
  readonly current: RateLimitConfig;
  /** Loads the files and watches them. */
  start(): void;
  /** Reports the state of the last load again (after another report on the same component, such as a worker restart). */
  report(): void;
  /** Stops watching. Safe to call twice. */
  close(): void;
}

/** The first limit in a tree that uses the Redis backend. */
function firstRedisLimit(node: DescriptorNode): Limit | undefined {
  if (node.limit?.backend === 'redis') return node.limit;
  for (const child of [...node.children.values(), ...[...node.wildcards.values()].flat().map((w) => w.node)]) {
    const found = firstRedisLimit(child);
    if (found) return found;
  }
  return undefined;
}

/**
 * Loads the rate-limit files and reloads them shortly after any change (a ConfigMap swaps a
 * symlink; editors replace files). A file that does not load keeps the previous limits, reports
 * `degraded` and counts in `heimdall_ratelimit_config_errors_total`; domains a reload removes are
 * logged as an error, naming them.
 */
export function createLimitsFile(options: LimitsFileOptions): LimitsFile {
  const logger = options.logger;
  const errors = new Counter({ name: 'heimdall_ratelimit_config_errors_total', help: 'Rate-limit configuration loads that failed (the previous configuration stays).', registers: [options.metrics] });
  const domains = new Gauge({ name: 'heimdall_ratelimit_domains', help: 'Domains in the loaded rate-limit configuration.', registers: [options.metrics] });
  let current: RateLimitConfig = new Map();
  let watcher: PathWatch | undefined;
  const honeypots = new Set(options.config.security.automation.honeypots.map((h) => h.name));
  let refused: string | undefined; // why the last load failed; none: it succeeded
  const report = (): void => (refused === undefined ? options.reporter.set('ready') : options.reporter.set('degraded', `rate-limit configuration not loaded, previous one kept: ${refused}`));

  /** Loads the files; on success hands the limits to onLoad (outside the load's error handling: its failure is no configuration error). */
  const load = (path: string): void => {
    if (tryLoad(path)) options.onLoad?.(current);
  };
  const tryLoad = (path: string): boolean => {
    try {
      const next = loadRateLimitConfig(path, honeypots);
      if (!options.config.redis) {
        const redisLimit = [...next.values()].map(firstRedisLimit).find((l) => l !== undefined);
        if (redisLimit) throw new RateLimitConfigError(path, undefined, `${redisLimit.path}: backend redis needs ratelimit.redis in the agent's configuration`);
      }
      // Limits that disappear stop protecting someone: say so loudly, naming the domains.
      const lost = [...current.keys()].filter((d) => !next.has(d));
      current = next;
      domains.set(current.size);
      refused = undefined;
      report();
      if (lost.length > 0) logger.error({ path, lost, domains: [...current.keys()] }, `rate-limit domains removed by the reload, no longer limited: ${lost.join(', ')}`);
      logger.info({ path, domains: [...current.keys()] }, 'rate-limit configuration loaded');
      return true;
    } catch (err) {
      errors.inc();
      refused = err instanceof RateLimitConfigError ? err.message : `cannot read ${path}: ${(err as Error).message}`;
      report();
      logger.error(err instanceof RateLimitConfigError ? { file: err.file, line: err.line, reason: err.reason } : { err }, 'invalid rate-limit configuration; keeping the previous one');
      return false;
    }
  };

  return {
    get current() {
      return current;
    },
    start() {
      const path = options.config.config_path;
      if (!path) return report();
      load(path);
      watcher = watchPath(path, () => load(path), logger);
    },
    report,
    close() {
      watcher?.close();
    },
  };
}
