import type { Config } from '../config/schema.js';
import type { Logger } from '../telemetry/logger.js';

/** A component as the agent drives it: started in order, shut down in reverse. */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  shutdown(graceMs?: number): Promise<void>;
}

/** Options for createLifecycle. */
export interface LifecycleOptions {
  /** In start order; shut down in reverse. */
  components: readonly Component[];
  /** The `shutdown` section: the drain before components stop, and the deadline of the whole shutdown. */
  config: Config['shutdown'];
  /** Called first when a shutdown begins (or a start fails): health turns NOT_SERVING. */
  beginShutdown(): void;
  logger: Logger;
}

/** Starts and stops components in order under one shutdown deadline. */
export interface Lifecycle {
  /**
   * Starts every component in order; on a failure shuts down those that started (in reverse) and
   * rethrows. A shutdown during start stops the start: what started is then stopped by shutdown.
   * Resolves false when a shutdown stopped it.
   */
  start(): Promise<boolean>;
  /**
   * Drains for `shutdown.drain`, then shuts the started components down in reverse, each with what
   * is left of `shutdown.timeout` minus a reserve for those after it. Safe to call twice (the second
   * call waits for the first).
   */
  shutdown(): Promise<void>;
}

/** Leave of each later component while an earlier one shuts down, and the least any one gets (ms). */
const RESERVE_MS = 250;

/** Creates the lifecycle of `components`. */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const { config, logger } = options;
  const started: Component[] = [];
  let stopping: Promise<void> | undefined;
  let deadline = Number.POSITIVE_INFINITY;

  const stopAll = async (): Promise<void> => {
    const order = [...started].reverse();
    started.length = 0;
    for (const [i, c] of order.entries()) {
      const left = deadline - Date.now() - (order.length - i - 1) * RESERVE_MS;
      try {
        await c.shutdown(Math.max(RESERVE_MS, Math.min(left, config.timeout)));
      } catch (err) {
        logger.error({ err, component: c.name }, 'component did not shut down cleanly');
      }
    }
  };

  return {
    async start() {
      try {
        for (const c of options.components) {
          if (stopping) return false;
          await c.start();
          started.push(c);
        }
        return true;
      } catch (err) {
        options.beginShutdown();
        await stopAll();
        throw err;
      }
    },
    shutdown() {
      stopping ??= (async () => {
        deadline = Date.now() + config.timeout - 500;
        options.beginShutdown();
        logger.info({ drainMs: config.drain }, 'shutting down: health is NOT_SERVING, draining');
        await new Promise((resolve) => setTimeout(resolve, config.drain));
        await stopAll();
        logger.info('Heimdall stopped');
      })();
      return stopping;
    },
  };
}
