import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { measureMemory } from 'node:vm';
import type { Logger } from './logger.js';

/** The memory a check looks at: V8's heap in use and the memory of Buffers and ArrayBuffers. */
export interface MemoryReading {
  heapUsed: number;
  external: number;
}

/** Options for createMemoryReturn. */
export interface MemoryReturnOptions {
  logger: Logger;
  /** How often memory is looked at, in ms (default 10 s). */
  intervalMs?: number;
  /** Growth of heap used + external since the last collection that makes a quiet process collect, in bytes (default 16 MiB). */
  growthBytes?: number;
  /** Share of the interval the event loop was busy under which the process counts as quiet (default 0.1). */
  quietUtilization?: number;
  /** Reads memory (default `process.memoryUsage`). */
  read?: () => MemoryReading;
  /** Event-loop utilisation since `previous` (default `performance.eventLoopUtilization`). */
  utilization?: (previous?: EventLoopUtilization) => EventLoopUtilization;
  /** Runs a full garbage collection (default `vm.measureMemory` with eager execution, which collects first). */
  collect?: () => Promise<unknown>;
}

/** Gives memory back once a load is over; a lifecycle component. */
export interface MemoryReturn {
  readonly name: 'memory';
  /** Starts looking every interval (the timer does not keep the process alive). */
  start(): Promise<void>;
  /** One look: collects when the process was quiet since the last look and memory grew past the threshold. Resolves whether it collected; never rejects. */
  check(): Promise<boolean>;
  /** Stops looking. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Creates the memory return: after a load, garbage that reached V8's old generation (request
 * buffers held while batches were written) waits for the next full collection, which a quiet
 * process may not run for a long time, and keeps its Buffers' native memory resident meanwhile. When
 * the event loop has been quiet for an interval and heap used + external memory grew by more than
 * the threshold since the last collection, this runs one full collection, without `--expose-gc`.
 */
export function createMemoryReturn(options: MemoryReturnOptions): MemoryReturn {
  const logger = options.logger.child({ component: 'memory' });
  const intervalMs = options.intervalMs ?? 10_000;
  const growthBytes = options.growthBytes ?? 16 * 2 ** 20;
  const quiet = options.quietUtilization ?? 0.1;
  const read = options.read ?? (() => process.memoryUsage());
  const utilization = options.utilization ?? ((previous?: EventLoopUtilization) => performance.eventLoopUtilization(previous));
  const collect = options.collect ?? (() => measureMemory({ mode: 'summary', execution: 'eager' }));
  const total = (r: MemoryReading) => r.heapUsed + r.external;
  let baseline = total(read());
  let elu = utilization();
  let timer: NodeJS.Timeout | undefined;
  let checking = false;

  const check = async (): Promise<boolean> => {
    const busy = utilization(elu).utilization;
    elu = utilization();
    const now = total(read());
    baseline = Math.min(baseline, now);
    if (checking || busy >= quiet || now - baseline < growthBytes) return false;
    checking = true;
    try {
      await collect();
      baseline = total(read());
      logger.debug({ beforeBytes: now, afterBytes: baseline }, 'quiet after a load: memory collected');
      return true;
    } catch (err) {
      logger.warn({ err }, 'memory collection failed');
      return false;
    } finally {
      checking = false;
    }
  };

  return {
    name: 'memory',
    async start() {
      baseline = total(read());
      elu = utilization();
      timer ??= setInterval(() => void check(), intervalMs).unref();
    },
    check,
    async shutdown() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
