import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
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
  /** The Node flags the process runs with, where an operator's own `--heap-growing-percent` is looked for (default `process.execArgv` and `NODE_OPTIONS`). */
  nodeFlags?: string;
  /** Sets a V8 flag (default `v8.setFlagsFromString`). */
  setFlag?: (flag: string) => void;
}

/**
 * How far V8's old generation may grow past what survived its last full collection, set once the
 * agent has started: V8's own factor (up to 4x for a heap this small) cost server-transport ingest
 * ~15% more CPU per span and ~50 MiB more at its peak; as a command-line flag it slowed start-up by
 * ~60 ms (more full collections while modules load).
 */
export const HEAP_GROWING_FLAG = '--heap-growing-percent=100';

/** Gives memory back once a load is over, and bounds the old generation's growth from start on; a lifecycle component. */
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
  const nodeFlags = options.nodeFlags ?? `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  const setFlag = options.setFlag ?? setFlagsFromString;
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
      // V8 reads the flag at each full collection, in every isolate of the process; an operator's own wins.
      if (!/--heap[-_]growing[-_]percent\b/.test(nodeFlags)) setFlag(HEAP_GROWING_FLAG);
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
