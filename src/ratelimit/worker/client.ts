import { getPriority, setPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AgentError } from '../../errors/agent-error.js';
import type { HealthReporter } from '../../health/registry.js';
import type { Logger } from '../../telemetry/logger.js';
import type { HoneypotHitSink } from '../honeypot-hits.js';
import type { OverLimitSink } from '../over-limit.js';
import type { RlsAnswer } from '../rls-answer.js';
import type { SignalSink } from '../signals.js';
import { createPendingCalls, type PendingCalls } from './pending.js';
import type { FromWorker, MetricFamily, ToWorker, WorkerInit } from './protocol.js';
import { threadEntry } from './thread-url.js';

/** Options for createWorkerClient. */
export interface WorkerClientOptions {
  /** What each worker starts from; read again at every (re)start, so tokens and security are current. */
  init: () => WorkerInit;
  /** `server.ratelimit.max_forwarded`: checks handed to the worker at once. */
  maxForwarded: number;
  /** `server.ratelimit.main_thread_nice`: the calling (main) thread's niceness once the worker thread exists; 0 leaves it. */
  mainThreadNice?: number | undefined;
  /** Where the worker's components report (`ratelimit`, `ratelimit-redis`); `ratelimit` also says when the worker is gone. */
  reporters: ReadonlyMap<string, HealthReporter>;
  /** Gets the over-limit records of each window. */
  overLimit: OverLimitSink;
  /** Gets the worker's signals for automation rules (refusals, incidents); none: they are dropped. */
  signals?: SignalSink | undefined;
  /** Gets the worker's honeypot hit reports; none: they are dropped. */
  honeypotHits?: HoneypotHitSink | undefined;
  /** Called each time a worker serves (after a restart too, which reported `ratelimit` degraded). */
  onServing?: (() => void) | undefined;
  /** The agent's logger: the worker's lines go through it with their own component; the client's own, under component `ratelimit`. */
  logger: Logger;
}

/** The main thread's handle on the rate-limit worker thread. */
export interface WorkerClient {
  /** Hands a check to the worker: UNAVAILABLE (retry after 1 s) while there is none, RESOURCE_EXHAUSTED past max_forwarded. */
  answer: RlsAnswer;
  /** Posts a message to the running worker (dropped while there is none: the next one starts from `init`). */
  post(message: ToWorker): void;
  /** The worker listener's port (0: none, or not listening yet). */
  readonly port: number;
  /** The worker registry's families; none when the worker does not answer within 2 s. */
  metrics(): Promise<MetricFamily[]>;
  /** Ends the worker thread as a crash would (tests use it); it is restarted like after one. */
  terminate(): Promise<void>;
  /** Whether a worker exited and its replacement does not serve yet (`ratelimit` reports degraded meanwhile). */
  restarting(): boolean;
  /**
   * Starts the worker thread without its listener (it loads its modules while the agent's other
   * components start); it does not keep the process alive until start.
   */
  prepare(): void;
  /** Starts the worker (unless prepared) and its listener; resolves once it serves, rejects when its listener cannot bind. */
  start(): Promise<void>;
  /** Shuts the worker down (its listener drains for up to graceMs), then ends the thread. Safe to call twice. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Relays a worker's log line through the main logger (its level, message and fields). */
function relayLog(logger: Logger, line: string): void {
  const { level, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
  // The main logger writes its own.
  delete fields.time;
  delete fields.service;
  const log = logger[(typeof level === 'string' && level in logger ? level : 'info') as 'info'];
  log.call(logger, fields, typeof msg === 'string' ? msg : '');
}

/** The worker registry's families; none when it does not answer within 2 s. */
function readMetrics(worker: Worker, reads: PendingCalls<MetricFamily[]>): Promise<MetricFamily[]> {
  const { id, answer } = reads.open();
  worker.postMessage({ t: 'metrics', id } satisfies ToWorker);
  const timeout = new Promise<MetricFamily[]>((resolve) => setTimeout(() => resolve([]), 2_000).unref());
  return Promise.race([answer, timeout]).catch(() => []);
}

/** Asks the worker to shut down (its listener drains for up to graceMs) and waits until it says it closed (at most graceMs + 1 s). */
function stopWorker(worker: Worker, graceMs: number, onClosed: (resolve: () => void) => void): Promise<void> {
  const done = new Promise<void>((resolve) => {
    onClosed(resolve);
    setTimeout(resolve, graceMs + 1_000).unref();
  });
  worker.postMessage({ t: 'shutdown', graceMs } satisfies ToWorker);
  return done;
}

/** Logs a worker's exit, reports `ratelimit` degraded, and calls `spawn` after `delayMs`. */
function restartLater(code: number, delayMs: number, options: WorkerClientOptions, logger: Logger, spawn: () => void): NodeJS.Timeout {
  logger.error({ code, restartInMs: delayMs }, 'rate-limit worker exited; restarting it (local buckets start full again)');
  options.reporters.get('ratelimit')?.set('degraded', `the rate-limit worker exited (code ${code}); restarting, local buckets start full again`);
  return setTimeout(spawn, delayMs).unref();
}

/** A new worker thread (dist's module, or the source under vitest) whose messages and exit go to the handlers given. */
function startThread(init: WorkerInit, logger: Logger, onMessage: (m: FromWorker) => void, onExit: (code: number) => void): Worker {
  const entry = threadEntry('entry');
  const w = new Worker(entry.url, { workerData: init, execArgv: entry.execArgv, name: 'heimdall-ratelimit' });
  w.on('message', onMessage);
  w.on('error', (err) => logger.error({ err }, 'rate-limit worker failed'));
  w.on('exit', onExit);
  return w;
}

/** Hands a check to `worker`: a copy of its bytes, transferred (the caller's buffer may share a pool slab). */
async function forward(worker: Worker | undefined, checks: PendingCalls<Uint8Array>, bytes: Uint8Array): Promise<Uint8Array> {
  if (!worker) throw gone();
  const { id, answer } = checks.open();
  const owned = new Uint8Array(bytes);
  worker.postMessage({ t: 'check', id, bytes: owned } satisfies ToWorker, [owned.buffer]);
  return answer;
}

type Started = { resolve(): void; reject(err: Error): void };

/** Hands on what the worker reports: log lines, health, over-limit records, signals, honeypot hits. */
function relay(m: Extract<FromWorker, { t: 'log' | 'health' | 'overLimit' | 'signals' | 'honeypotHit' }>, options: WorkerClientOptions): void {
  if (m.t === 'overLimit') options.overLimit(m.records);
  else if (m.t === 'signals') options.signals?.(m.signals);
  else if (m.t === 'honeypotHit') options.honeypotHits?.(m.hit);
  else if (m.t === 'log') relayLog(options.logger, m.line);
  else options.reporters.get(m.component)?.set(m.state, m.reason);
}

/**
 * Lowers the calling thread's priority to `nice` (never raises it): on Linux, setpriority on the
 * calling thread affects only that thread, so the worker thread keeps its own and wins a shared
 * core. Unprivileged processes may do this; a failure is logged and changes nothing.
 */
function yieldThread(nice: number, logger: Logger): void {
  try {
    if (nice > getPriority()) setPriority(nice);
  } catch (err) {
    logger.warn({ err, nice }, 'cannot lower the main thread priority; rate-limit checks share the CPU with it evenly');
  }
}

const gone = (): AgentError => new AgentError('unavailable', 'the rate-limit worker is restarting', 1_000);

/**
 * Creates the client: starts the worker (dist's built module, or the TypeScript source under
 * vitest, see thread-url.ts), forwards checks to it with their buffers transferred, relays its
 * logs, health, over-limit records, honeypot hits and metrics. A worker that dies is logged, `ratelimit` reports
 * degraded, pending checks fail UNAVAILABLE, and a new worker starts (its buckets full again).
 */
export function createWorkerClient(options: WorkerClientOptions): WorkerClient {
  const logger = options.logger.child({ component: 'ratelimit' });
  const checks = createPendingCalls<Uint8Array>(options.maxForwarded, 'rate-limit checks handed to the worker');
  const reads = createPendingCalls<MetricFamily[]>(16, 'metric reads of the rate-limit worker');
  let worker: Worker | undefined;
  let [port, restarts, stopping, down] = [0, 0, false, false];
  let restartTimer: NodeJS.Timeout | undefined;
  let closed: (() => void) | undefined;
  const onMessage = (m: FromWorker, started: Started): void => {
    if (m.t === 'answer') checks.resolve(m.id, m.bytes);
    else if (m.t === 'error') checks.reject(m.id, m.code ? new AgentError(m.code, m.message, undefined, m.violations) : new Error(m.message));
    else if (m.t === 'metrics') reads.resolve(m.id, m.families);
    else if (m.t === 'listening') {
      [port, restarts, down] = [m.port, 0, false];
      options.onServing?.();
      started.resolve();
    } else if (m.t === 'failed') started.reject(new Error(m.message));
    else if (m.t === 'closed') closed?.();
    else relay(m, options);
  };
  /** Starts a worker; `listen`: its listener binds at once (else on start). Resolves once it serves. */
  const spawn = (listen: boolean): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const started: Started = { resolve, reject };
      const w: Worker = startThread(options.init(), logger, (m) => onMessage(m, started), (code) => {
        if (worker === w) worker = undefined;
        port = 0;
        checks.rejectAll(gone());
        reads.rejectAll(gone());
        reject(new Error(`the rate-limit worker exited (code ${code}) before it served`));
        if (!stopping) restart(code);
      });
      worker = w;
      if (listen) w.postMessage({ t: 'listen' } satisfies ToWorker);
      else w.unref();
    });
  /** Whether the agent started (a new worker listens at once); the latest worker's start. */
  let serving = false;
  let current: Promise<void> | undefined;
  const launch = (): Promise<void> => (current = spawn(serving));
  const respawn = (): void => void launch().catch((err: unknown) => void (logger.error({ err }, 'rate-limit worker did not start'), worker?.terminate()));
  const restart = (code: number): void => void ((down = true), (restartTimer = restartLater(code, Math.min(5_000, 100 * 2 ** restarts++), options, logger, respawn)));
  return {
    answer: (bytes) => forward(worker, checks, bytes),
    post: (message) => worker?.postMessage(message),
    get port() {
      return port;
    },
    restarting: () => down,
    metrics: () => (worker ? readMetrics(worker, reads) : Promise.resolve([])),
    terminate: async () => void (await worker?.terminate()),
    // A failure is the start's to report. The worker thread exists once launched: the main thread
    // yields now, so the threads it makes afterwards (the embedded engine's pools, libuv's) inherit
    // its lower priority, not the worker's.
    prepare() {
      void (current ?? launch()).catch(() => undefined);
      yieldThread(options.mainThreadNice ?? 0, logger);
    },
    async start() {
      serving = true;
      try {
        if (!worker || !current) await launch();
        else {
          worker.ref();
          worker.postMessage({ t: 'listen' } satisfies ToWorker);
          await current;
        }
        yieldThread(options.mainThreadNice ?? 0, logger);
      } catch (err) {
        stopping = true;
        await worker?.terminate();
        throw err;
      }
    },
    async shutdown(graceMs = 5_000) {
      if (stopping) return;
      stopping = true;
      clearTimeout(restartTimer);
      const w = worker;
      if (!w) return;
      await stopWorker(w, graceMs, (resolve) => (closed = resolve));
      await w.terminate();
    },
  };
}
