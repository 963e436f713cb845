import type { Storage } from '../storage/storage.js';
import type { Logger } from '../telemetry/logger.js';

/** Live runs are saved again this often, so other agents can tell their agent is still there. */
export const HEARTBEAT_MS = 10_000;
/** Every this many heartbeats, unfinished runs of the last two days are looked at for stale ones. */
export const SWEEP_EVERY = 6;
export const SWEEP_WINDOW_MS = 2 * 86_400_000;

/** Options for createMaintenance: what it calls. */
export interface MaintenanceOptions {
  storage: Pick<Storage, 'ready' | 'whenReady'>;
  /** Loads what the store holds (API jobs, pauses); throws when storage cannot answer. */
  resync(): Promise<void>;
  /** The restore at start: loads the store (as resync), runs missed ticks, handles interrupted runs; throws to be retried. */
  restore(): Promise<void>;
  /** Looks for interrupted runs created since (ms). */
  sweep(since: number): Promise<void>;
  /** Storage is not ready at a heartbeat. */
  storageDown(): void;
  /** Saves live runs again. */
  heartbeat(): void;
  /** Scheduled jobs, for the log line once restored. */
  count(): number;
  /** True once the agent stops. */
  stopped(): boolean;
  logger: Logger;
}

/** The background work of the jobs component: restore at start, then heartbeats, resyncs and sweeps. */
export interface Maintenance {
  /**
   * Once storage is ready, restores, retrying every 2 s until that succeeds; then every HEARTBEAT_MS: a heartbeat, a resync while storage
   * is ready, and a sweep of the last SWEEP_WINDOW_MS every SWEEP_EVERY rounds. Nothing after stop.
   */
  start(): void;
  /** Stops the rounds and waits for the restore to end (`stopped()` must be true by then). Safe to call twice. */
  shutdown(): Promise<void>;
}

/** Creates it. Owns the restore in flight and the round timer. */
export function createMaintenance(options: MaintenanceOptions): Maintenance {
  const { logger } = options;
  let restoring: Promise<void> | undefined;
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const rounds = (): void => {
    let round = 0;
    timer = setInterval(() => {
      options.heartbeat();
      if (!options.storage.ready) return options.storageDown();
      options.resync().catch((err: unknown) => logger.debug({ err }, 'cannot read stored jobs; retrying'));
      round += 1;
      if (round % SWEEP_EVERY === 0) options.sweep(Date.now() - SWEEP_WINDOW_MS).catch((err: unknown) => logger.warn({ err }, 'cannot look for interrupted runs; retrying'));
    }, HEARTBEAT_MS);
    timer.unref();
  };
  const restore = async (): Promise<void> => {
    for (;;) {
      if (!(await options.storage.whenReady(stopping.signal)) || options.stopped()) return;
      try {
        await options.restore();
        if (options.stopped()) return;
        logger.info({ jobs: options.count() }, 'jobs restored');
        rounds();
        return;
      } catch (err) {
        logger.warn({ err }, 'cannot restore jobs yet; retrying');
        await new Promise((r) => setTimeout(r, 2_000));
      }
    }
  };
  return {
    start() {
      restoring = restore();
    },
    async shutdown() {
      clearInterval(timer);
      stopping.abort();
      await restoring;
    },
  };
}
