import { Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';
import { backoffMs, jittered } from '../time/backoff.js';
import { StorageNotReady } from './errors.js';
import { createEmbeddedTransport } from './embedded.js';
import { migrate, schemaContext } from './migrate.js';
import { createServerTransport } from './server.js';
import { createSizeGuard, type SizeGuard } from './size-guard.js';
import type { StorageTransport } from './transport.js';

type StorageConfig = Config['storage'];

/** How long start() waits for the first connection attempt before letting the agent go on. */
const FIRST_ATTEMPT_WAIT_MS = 2_000;

/** Which transport a storage config selects: `server` when a URL is set, unless `mode` says otherwise. */
function storageMode(config: StorageConfig): 'embedded' | 'server' {
  return config.mode ?? (config.clickhouse.url ? 'server' : 'embedded');
}

/**
 * Opens the transport the config selects. Embedded: loads chdb and opens the data directory (throws
 * StorageUnavailableError when chdb is missing). Server: no I/O until the first call.
 */
export async function openTransport(config: StorageConfig): Promise<StorageTransport> {
  if (storageMode(config) === 'embedded') return createEmbeddedTransport({ path: config.embedded.path });
  const ch = config.clickhouse;
  if (!ch.url) throw new Error('storage.mode is "server" but storage.clickhouse.url is not set');
  return createServerTransport({
    url: ch.url,
    username: ch.username,
    password: ch.password,
    database: ch.database,
    cluster: ch.cluster,
    requestTimeout: ch.request_timeout,
    maxOpenConnections: ch.max_open_connections,
    tls: ch.tls ? { caFile: ch.tls.ca_file, certFile: ch.tls.cert_file, keyFile: ch.tls.key_file } : undefined,
  });
}

/** The schema context (cluster, engine, retention) a storage config asks for. */
export function schemaContextFor(config: StorageConfig) {
  return schemaContext({ cluster: config.clickhouse.cluster, engine: config.clickhouse.table_engine, retention: config.retention });
}

/** Options for createStorage. */
export interface StorageOptions {
  /** The `storage` section of the configuration. */
  config: StorageConfig;
  /** The agent's logger; storage logs as component `storage`. */
  logger: Logger;
  /** Where storage reports reachability, as component `storage` (critical for readiness). */
  health: HealthRegistry;
  /** Registry for `heimdall_storage_reachable`. */
  metrics: Registry;
}

/** The storage component: owns the transport and keeps readiness true to whether storage answers. */
export interface Storage {
  readonly name: 'storage';
  /** The open transport. Throws before start. */
  readonly transport: StorageTransport;
  /** True while storage answers and its schema is migrated (writes can succeed). */
  readonly ready: boolean;
  /** Throws StorageNotReady (an AgentError `unavailable`: "storage is not ready: <what>; retry later") unless ready. */
  requireReady(what: string): void;
  /** Resolves true once ready (at once if it is), false when `signal` aborts or storage stops first. */
  whenReady(signal?: AbortSignal): Promise<boolean>;
  /**
   * Records the outcome of an insert: a retryable failure (full disk, overload) marks the component
   * failed, for the strict readiness and /status, until an insert succeeds or none has failed for
   * three health-check intervals. Never throws.
   */
  recordWrite(bytes: number, error?: Error & { retryable?: boolean }): void;
  /** Why an insert would be refused now (unreachable, or the embedded store at its size budget); undefined when inserts can go ahead. */
  refusal(): string | undefined;
  /** The embedded store's size budget and use, when `storage.embedded.max_size` is set. */
  readonly size: { used: number; limit: number } | undefined;
  /**
   * Opens the transport and starts connecting (and migrating, when configured), waiting at most 2 s
   * for the first attempt. Does not fail when storage is unreachable: it keeps retrying in the
   * background and reports why in health. Throws only for what retrying cannot fix (chdb missing,
   * data directory locked).
   */
  start(): Promise<void>;
  /** Stops retrying and closes the transport after calls in flight. Safe to call twice. */
  shutdown(): Promise<void>;
}

/** Creates the storage component. */
export function createStorage(options: StorageOptions): Storage {
  const { config } = options;
  const logger = options.logger.child({ component: 'storage' });
  const reporter = options.health.register('storage', { gate: 'strict' });
  const reachableGauge = new Gauge({ name: 'heimdall_storage_reachable', help: 'Whether ClickHouse answered the last check (1) or not (0).', registers: [options.metrics] });
  let transport: StorageTransport | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let migrated = false;
  let reachable = false;
  let failures = 0;
  /** Callers of whenReady, resolved when storage becomes ready (true) or stops (false). */
  const waiters = new Set<(ready: boolean) => void>();
  const wake = (ready: boolean): void => {
    for (const w of [...waiters]) w(ready);
  };
  /** The last insert failure not yet followed by a success. */
  let writeError: { message: string; at: number } | undefined;
  const guard: SizeGuard | undefined =
    storageMode(config) === 'embedded' && config.embedded.max_size !== undefined ? createSizeGuard({ maxBytes: config.embedded.max_size, logger, metrics: options.metrics }) : undefined;

  /** Reports reachable storage: ready, or failed while its inserts fail. */
  const reportReachable = (): void => {
    if (stopped) return;
    if (writeError && Date.now() - writeError.at > 3 * config.health_check_interval) writeError = undefined;
    const refusal = guard?.refusal();
    if (writeError) reporter.set('failed', `reachable, but inserts fail: ${writeError.message}`);
    else if (refusal) reporter.set('failed', `reachable, but inserts are refused: ${refusal}`);
    else reporter.set('ready');
  };

  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void attempt(), ms);
    timer.unref();
  };

  const attempt = async (): Promise<void> => {
    const t = transport;
    if (!t || stopped) return;
    try {
      await t.ping();
      if (!migrated && config.migrate_on_start) await migrate(t, schemaContextFor(config), logger);
      migrated = true;
      if (guard) {
        try {
          await guard.enforce(t);
        } catch (err) {
          logger.warn({ err }, 'cannot measure or trim the embedded store against storage.embedded.max_size; trying again at the next check');
        }
      }
      if (stopped) return;
      if (!reachable) logger.info({ target: t.target, kind: t.kind }, 'storage is reachable');
      reachable = true;
      reportReachable();
      wake(true);
      reachableGauge.set(1);
      failures = 0;
      schedule(config.health_check_interval);
    } catch (err) {
      if (stopped) return;
      failures += 1;
      const delay = backoffMs(failures, config.retry.initial_interval, config.retry.max_interval);
      const reason = `${t.kind} storage at ${t.target} is not available: ${(err as Error).message}; retrying in ${Math.round(delay)} ms`;
      if (failures === 1 || failures % 10 === 0) logger.warn({ err, attempt: failures }, reason);
      reachable = false;
      reporter.set('failed', reason);
      reachableGauge.set(0);
      schedule(jittered(delay, 0.2));
    }
  };

  return {
    name: 'storage',
    get transport() {
      if (!transport) throw new Error('storage is not started');
      return transport;
    },
    get ready() {
      return reachable && !stopped;
    },
    requireReady(what) {
      if (!reachable || stopped) throw new StorageNotReady(what);
    },
    whenReady(signal) {
      if (reachable && !stopped) return Promise.resolve(true);
      if (stopped || signal?.aborted) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const done = (ready: boolean): void => {
          waiters.delete(done);
          signal?.removeEventListener('abort', aborted);
          resolve(ready);
        };
        const aborted = (): void => done(false);
        waiters.add(done);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    },
    get size() {
      return guard && { used: guard.used, limit: guard.limit };
    },
    refusal() {
      if (!reachable || stopped) return 'storage is not ready (unreachable, or its schema is not migrated yet)';
      return guard?.refusal();
    },
    recordWrite(bytes, error) {
      if (!error) guard?.noteInsert(bytes);
      if (error && error.retryable === false) return;
      writeError = error && { message: error.message, at: Date.now() };
      if (reachable) reportReachable();
    },
    async start() {
      try {
        transport = await openTransport(config);
      } catch (err) {
        reporter.set('failed', (err as Error).message);
        throw err;
      }
      logger.info({ kind: transport.kind, target: transport.target }, 'storage transport opened');
      // Wait for the first attempt only briefly: an unreachable server must not hold back the
      // listeners for a whole request timeout. The attempt goes on and reports to health.
      let wait: NodeJS.Timeout | undefined;
      await Promise.race([attempt(), new Promise<void>((resolve) => (wait = setTimeout(resolve, FIRST_ATTEMPT_WAIT_MS)))]);
      clearTimeout(wait);
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      reporter.set('stopping');
      clearTimeout(timer);
      wake(false);
      await transport?.close();
      logger.info('storage closed');
    },
  };
}
