import { Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HealthRegistry, HealthReporter } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';
import { StorageNotReady } from './errors.js';
import { createEmbeddedTransport } from './embedded.js';
import { migrate, requireMigrated, schemaContext } from './migrate.js';
import { createReadyWaiters } from './ready-waiters.js';
import { createReconnectLoop } from './reconnect.js';
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
 * StorageUnavailableError when chdb is missing). Server: no I/O until the first call. Only the
 * selected transport's client is loaded (@clickhouse/client is ~40 modules and ~10 MiB an embedded
 * agent does not need; chdb is loaded by the embedded transport itself).
 */
export async function openTransport(config: StorageConfig): Promise<StorageTransport> {
  if (storageMode(config) === 'embedded') return createEmbeddedTransport({ path: config.embedded.path });
  const ch = config.clickhouse;
  if (!ch.url) throw new Error('storage.mode is "server" but storage.clickhouse.url is not set');
  const { createServerTransport } = await import('./server.js');
  return createServerTransport({
    url: ch.url,
    username: ch.username,
    password: ch.password,
    database: ch.database,
    cluster: ch.cluster,
    requestTimeout: ch.request_timeout,
    maxOpenConnections: ch.max_open_connections,
    insertCompression: ch.insert_compression,
    tls: ch.tls ? { caFile: ch.tls.ca_file, certFile: ch.tls.cert_file, keyFile: ch.tls.key_file } : undefined,
  });
}

/** The schema context (cluster, engine, retention, embedded or server) a storage config asks for. */
export function schemaContextFor(config: StorageConfig) {
  return schemaContext({ cluster: config.clickhouse.cluster, engine: config.clickhouse.table_engine, retention: config.retention, embedded: storageMode(config) === 'embedded' });
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
  /** Embedded engine (chdb, in this process) or a ClickHouse server, as the config says. */
  readonly mode: 'embedded' | 'server';
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

/**
 * The connect step of a check: ping, migrate the schema once (when `migrate_on_start`; else wait
 * until every migration is recorded, so nothing is written to tables not made yet), and trim
 * the embedded store to its size budget (a failure of that is logged, not thrown). Rejects when
 * storage does not answer or the migration fails; the next check tries again.
 */
function createConnectStep(config: StorageConfig, guard: SizeGuard | undefined, logger: Logger): (t: StorageTransport) => Promise<void> {
  let migrated = false;
  return async (t) => {
    await t.ping();
    if (!migrated) await (config.migrate_on_start ? migrate(t, schemaContextFor(config), logger) : requireMigrated(t));
    migrated = true;
    if (!guard) return;
    try {
      await guard.enforce(t);
    } catch (err) {
      logger.warn({ err }, 'cannot measure or trim the embedded store against storage.embedded.max_size; trying again at the next check');
    }
  };
}

/**
 * The health of reachable storage as its inserts make it: failed while the last insert failed
 * (until one succeeds or none has failed for three health-check intervals) or while the size
 * guard refuses inserts; ready otherwise.
 */
function createWriteHealth(reporter: HealthReporter, healthCheckIntervalMs: number, guard: SizeGuard | undefined) {
  /** The last insert failure not yet followed by a success. */
  let writeError: { message: string; at: number } | undefined;
  return {
    /** Records an insert's outcome (a non-retryable failure is the rows' fault, not storage's). Returns whether it changed anything. */
    record(error: (Error & { retryable?: boolean }) | undefined): boolean {
      if (error && error.retryable === false) return false;
      writeError = error && { message: error.message, at: Date.now() };
      return true;
    },
    /** Reports reachable storage: ready, or failed while its inserts fail or are refused. */
    report(): void {
      if (writeError && Date.now() - writeError.at > 3 * healthCheckIntervalMs) writeError = undefined;
      const refusal = guard?.refusal();
      if (writeError) reporter.set('failed', `reachable, but inserts fail: ${writeError.message}`);
      else if (refusal) reporter.set('failed', `reachable, but inserts are refused: ${refusal}`);
      else reporter.set('ready');
    },
  };
}

/** Waits for `work`, or at most `ms`: the work goes on after. */
async function waitAtMost(work: Promise<void>, ms: number): Promise<void> {
  let wait: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (wait = setTimeout(resolve, ms)))]);
  clearTimeout(wait);
}

/** Creates the storage component. */
export function createStorage(options: StorageOptions): Storage {
  const { config } = options;
  const logger = options.logger.child({ component: 'storage' });
  const reporter = options.health.register('storage', { gate: 'strict' });
  const reachableGauge = new Gauge({ name: 'heimdall_storage_reachable', help: 'Whether ClickHouse answered the last check (1) or not (0).', registers: [options.metrics] });
  const guard: SizeGuard | undefined =
    storageMode(config) === 'embedded' && config.embedded.max_size !== undefined ? createSizeGuard({ maxBytes: config.embedded.max_size, logger, metrics: options.metrics }) : undefined;
  const writes = createWriteHealth(reporter, config.health_check_interval, guard);
  const waiters = createReadyWaiters();
  const connect = createConnectStep(config, guard, logger);
  let transport: StorageTransport | undefined;
  let [stopped, reachable] = [false, false];

  const loop = createReconnectLoop({
    attempt: async () => transport && connect(transport),
    intervalMs: config.health_check_interval,
    retry: config.retry,
    onUp: () => {
      if (!reachable) logger.info({ target: transport?.target, kind: transport?.kind }, 'storage is reachable');
      reachable = true;
      writes.report();
      waiters.wake(true);
      reachableGauge.set(1);
    },
    onDown: (err, failures, delay) => {
      const reason = `${transport?.kind} storage at ${transport?.target} is not available: ${(err as Error).message}; retrying in ${Math.round(delay)} ms`;
      if (failures === 1 || failures % 10 === 0) logger.warn({ err, attempt: failures }, reason);
      reachable = false;
      reporter.set('failed', reason);
      reachableGauge.set(0);
    },
  });

  return {
    name: 'storage',
    mode: storageMode(config),
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
      return stopped ? Promise.resolve(false) : reachable ? Promise.resolve(true) : waiters.wait(signal);
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
      if (writes.record(error) && reachable && !stopped) writes.report();
    },
    async start() {
      transport = await openTransport(config).catch((err: unknown) => {
        reporter.set('failed', (err as Error).message);
        throw err;
      });
      logger.info({ kind: transport.kind, target: transport.target }, 'storage transport opened');
      // Briefly: an unreachable server must not hold back the listeners; the attempt goes on and reports to health.
      await waitAtMost(loop.check(), FIRST_ATTEMPT_WAIT_MS);
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      loop.stop();
      reporter.set('stopping');
      waiters.wake(false);
      await transport?.close();
      logger.info('storage closed');
    },
  };
}
