import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
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
  /** How long after start the first look comes, in ms (default 5 s): it collects what starting left, growth or not. */
  settleMs?: number;
  /** Runs a full garbage collection that gives memory back (default `collectLowMemory`). */
  collect?: () => Promise<unknown>;
  /** Runs after each collection: gives back memory outside V8 (memory-native.ts); what it returns is logged. Must not throw. */
  release?: () => object;
  /** Whether start sets `GC_FLAGS` (process-wide: the main thread's to set; default true). */
  setGcFlags?: boolean;
  /** The Node flags the process runs with, where an operator's own `--heap-growing-percent` is looked for (default `process.execArgv` and `NODE_OPTIONS`). */
  nodeFlags?: string;
  /** Sets a V8 flag (default `v8.setFlagsFromString`). */
  setFlag?: (flag: string) => void;
}

/**
 * V8 flags set once the agent has started (process-wide, read at each collection in every isolate),
 * each unless the operator gave it (command line or NODE_OPTIONS):
 * - how far the old generation may grow past what survived its last full collection: V8's own
 *   factor (up to 4x for a heap this small) cost server-transport ingest ~15% more CPU per span and
 *   ~50 MiB more at its peak; as a command-line flag it slowed start-up by ~60 ms (more full
 *   collections while modules load);
 * - when the marking of a full collection starts: once 80% of that growth is used. V8's own rule
 *   started it at about half, so that under a sustained ingest load it marked nearly all the time
 *   (two full collections a second); at 80%, bench:ingest's server transport spent a third less
 *   CPU on V8's background GC threads and did 4-10% more spans per core, for ~40 MiB more RSS at
 *   its peak.
 */
export const GC_FLAGS: readonly string[] = ['--heap-growing-percent=100', '--incremental-marking-soft-trigger=80'];

/** Whether `nodeFlags` set the V8 flag of `flag` (`--a-b=1`: `--a-b` or `--a_b`, any value). */
const flagGiven = (nodeFlags: string, flag: string): boolean => new RegExp(`${(flag.split('=')[0] ?? flag).replace(/-/g, '[-_]')}\\b`).test(nodeFlags);

/** Gives memory back once a load is over, and bounds the old generation's growth from start on; a lifecycle component. */
export interface MemoryReturn {
  readonly name: 'memory';
  /** Starts looking every interval (the timer does not keep the process alive). */
  start(): Promise<void>;
  /** One look: collects when the process was quiet since the last look and memory grew past the threshold (after failed collections, it skips 1, 2, 4 ... up to 360 such looks first). Resolves whether it collected; never rejects. */
  check(): Promise<boolean>;
  /** Stops looking. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * V8's collection for low memory, in this thread's isolate: full collections until one frees
 * nothing, compacting every page, emptying the young generation and giving pooled pages back. Run
 * through an in-process inspector session (`HeapProfiler.collectGarbage`), which needs no
 * `--inspect` and no `--expose-gc`. A collection started otherwise (`vm.measureMemory`) frees the
 * garbage but keeps the pages: the idle agent stayed at 118 MiB, against 103 after this.
 * `node:inspector` is loaded on the first call, not at start (~6 ms of CPU in each isolate).
 */
export async function collectLowMemory(): Promise<void> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.collectGarbage');
  } finally {
    session.disconnect();
  }
}

/** Looks skipped at most after failed collections. */
const MAX_SKIPPED_LOOKS = 360;

/**
 * Creates the memory return, for the isolate of the thread it runs in: after a load, garbage that
 * reached V8's old generation (request buffers held while batches were written) waits for the next
 * full collection, which a quiet process may not run for a long time, and keeps its pages and its
 * Buffers' native memory resident meanwhile. When the event loop has been quiet for an interval and
 * heap used + external memory grew by more than the threshold since the last collection, this runs
 * one `collect`, then `release`; and once, `settleMs` after start, whatever the growth (start-up's
 * garbage, and the engine code start-up alone ran).
 */
export function createMemoryReturn(options: MemoryReturnOptions): MemoryReturn {
  const logger = options.logger.child({ component: 'memory' });
  const intervalMs = options.intervalMs ?? 10_000;
  const growthBytes = options.growthBytes ?? 16 * 2 ** 20;
  const quiet = options.quietUtilization ?? 0.1;
  const read = options.read ?? (() => process.memoryUsage());
  const utilization = options.utilization ?? ((previous?: EventLoopUtilization) => performance.eventLoopUtilization(previous));
  const collect = options.collect ?? collectLowMemory;
  const settleMs = options.settleMs ?? 5_000;
  const nodeFlags = options.nodeFlags ?? `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  const setFlag = options.setFlag ?? setFlagsFromString;
  const total = (r: MemoryReading) => r.heapUsed + r.external;
  let baseline = total(read());
  let elu = utilization();
  let timer: NodeJS.Timeout | undefined;
  let settle: NodeJS.Timeout | undefined;
  let checking = false;
  let settled = false;
  /** Failed collections in a row, and the looks left to skip before the next try. */
  let failures = 0;
  let skip = 0;

  const check = async (): Promise<boolean> => {
    const busy = utilization(elu).utilization;
    elu = utilization();
    const now = total(read());
    baseline = Math.min(baseline, now);
    if (checking || busy >= quiet || (settled && now - baseline < growthBytes)) return false;
    if (skip > 0) return (skip--, false);
    checking = true;
    try {
      const t0 = performance.now();
      await collect();
      settled = true;
      failures = 0;
      baseline = total(read());
      const released = options.release?.();
      logger.debug({ beforeBytes: now, afterBytes: baseline, ...released, ms: Math.round(performance.now() - t0) }, 'quiet: memory collected');
      return true;
    } catch (err) {
      // Backs off (1, 2, 4 ... up to 360 looks skipped: an hour at the default interval); warns once.
      skip = Math.min(2 ** failures, MAX_SKIPPED_LOOKS);
      failures++;
      if (failures === 1) logger.warn({ err }, 'memory collection failed; retrying less and less often');
      else logger.debug({ err, failures }, 'memory collection failed again');
      return false;
    } finally {
      checking = false;
    }
  };

  return {
    name: 'memory',
    async start() {
      // An operator's own flags win.
      if (options.setGcFlags !== false) for (const flag of GC_FLAGS) if (!flagGiven(nodeFlags, flag)) setFlag(flag);
      baseline = total(read());
      elu = utilization();
      settle ??= setTimeout(() => void check(), settleMs).unref();
      timer ??= setInterval(() => void check(), intervalMs).unref();
    },
    check,
    async shutdown() {
      clearTimeout(settle);
      clearInterval(timer);
      settle = timer = undefined;
    },
  };
}
