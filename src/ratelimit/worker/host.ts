import type { MessagePort } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { AgentError } from '../../errors/agent-error.js';
import type { ComponentState, HealthReporter } from '../../health/registry.js';
import { createLogger, type Logger } from '../../telemetry/logger.js';
import { createMemoryReturn } from '../../telemetry/memory-return.js';
import { createSeriesLimits } from '../../telemetry/series-limits.js';
import { createBuckets } from '../backends.js';
import { createRateLimitCheck } from '../check.js';
import { createHoneypotHits } from '../honeypot-hits.js';
import { createHoneypotOverlay } from '../honeypot-overlay.js';
import { createHoneypotTraps } from '../honeypot-traps.js';
import { createOverLimitReporter } from '../over-limit.js';
import { createRlsAnswer, createRlsReply, type RlsAnswer } from '../rls-answer.js';
import { createSecurityReplica } from '../security-replica.js';
import { createSignalCollector } from '../signals.js';
import { createLimitStats } from '../stats.js';
import { createRlsListener } from './listener.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';
import { createTokenTable } from './tokens.js';

type Post = (message: FromWorker, transfer?: ArrayBuffer[]) => void;

/** A health reporter whose reports go to the main thread's registry. */
function remoteReporter(component: string, post: Post): HealthReporter {
  let state: ComponentState = 'starting';
  return {
    set(next, reason = '') {
      state = next;
      post({ t: 'health', component, state: next, reason });
    },
    get state() {
      return state;
    },
  };
}

/** Every part of the rate limiter that holds state, built in the worker: limits (as the main thread loads them), buckets, stats, security replica (with the honeypots' overlay), over-limit counts. */
function createRateLimitCore(init: WorkerInit, post: Post, logger: Logger, metrics: Registry) {
  const config = init.ratelimit;
  const clock = init.clock;
  const now = clock ? () => clock[0] ?? 0 : () => performance.now();
  const limits = { current: init.limits };
  const seriesLimits = createSeriesLimits({ config: init.metrics, metrics, logger });
  const stats = createLimitStats(metrics, seriesLimits, init.metrics.max_series);
  const buckets = createBuckets({ config, now, logger, metrics, health: { register: (name) => remoteReporter(name, post) } });
  const traps = createHoneypotTraps(config.security.automation.honeypots);
  const overlay = traps && createHoneypotOverlay();
  const security = init.security ? createSecurityReplica(config.security, init.security, overlay) : undefined;
  const honeypots = overlay && createHoneypotHits({ config: config.security.automation, overlay, blocked: security && ((e) => security.blocked(e)), sink: (hit) => post({ t: 'honeypotHit', hit }), firstSeq: init.security?.hits?.acked, metrics });
  // Signals only feed automation rules: none configured, none counted.
  const signals = config.security.automation.rules.length > 0 ? createSignalCollector({ sink: (s) => post({ t: 'signals', signals: s }) }) : undefined;
  const overLimit = createOverLimitReporter({ config, incidentThreshold: config.security.incident_threshold, sink: (records) => post({ t: 'overLimit', records }), signals, metrics });
  const check = createRateLimitCheck({ config, limits, buckets, stats, security, overLimit, traps, honeypots });
  return { limits, buckets, security, overLimit, signals, reply: createRlsReply(check), answer: createRlsAnswer(check) };
}

/** Answers one forwarded check: its encoded reply (buffer transferred), or its error. */
function answerForwarded(answer: RlsAnswer, id: number, bytes: Uint8Array, post: Post, logger: Logger): void {
  answer(bytes).then(
    (reply) => {
      // The encoder's Buffer may share a pool slab: send a copy of exactly its bytes.
      const owned = new Uint8Array(reply);
      post({ t: 'answer', id, bytes: owned }, [owned.buffer]);
    },
    (err: unknown) => {
      if (!(err instanceof AgentError)) logger.error({ err }, 'rate-limit check failed');
      post(err instanceof AgentError ? { t: 'error', id, code: err.code, message: err.message, violations: err.violations ? [...err.violations] : undefined } : { t: 'error', id, code: undefined, message: 'internal error', violations: undefined });
    },
  );
}

/**
 * Runs the rate limiter in this (worker) thread: it owns the buckets (local, or Redis with its breaker), the metrics of both, the security replica, the
 * over-limit counts and the signals of automation rules, and serves Envoy's RLS API on its own listener once told to listen. The main
 * thread's messages (protocol.ts) hand it checks, limits, security snapshots, tokens, metric reads and the shutdown.
 * It loads neither zod nor a YAML parser: the main thread parses the limits files.
 */
export function runRateLimitWorker(init: WorkerInit, port: MessagePort): void {
  const post: Post = (message, transfer) => port.postMessage(message, transfer);
  const logger = createLogger({ level: init.logLevel, destination: { write: (line: string) => post({ t: 'log', line }) } }).child({ component: 'ratelimit' });
  const metrics = new Registry();
  const core = createRateLimitCore(init, post, logger, metrics);
  const tokens = createTokenTable(init.tokens);
  const listener = init.listener.enabled ? createRlsListener({ config: init.listener, reply: core.reply, tokens, logger, metrics }) : undefined;
  // This isolate's own heap: start-up's garbage and a load's are given back once quiet, as in the main
  // thread, but only below 1% busy (under ~100 checks/s): a collection holds the thread 20-50 ms.
  const memory = createMemoryReturn({ logger, setGcFlags: false, quietUtilization: 0.01 });
  const listen = (): void => {
    (listener?.start() ?? Promise.resolve(0)).then(
      (bound) => post({ t: 'listening', port: bound }),
      (err: unknown) => post({ t: 'failed', message: (err as Error).message }),
    );
  };
  port.on('message', (m: ToWorker) => {
    if (m.t === 'listen') listen();
    else if (m.t === 'check') answerForwarded(core.answer, m.id, m.bytes, post, logger);
    else if (m.t === 'security') core.security?.replace(m.snapshot);
    else if (m.t === 'tokens') tokens.replace(m.tokens);
    else if (m.t === 'limits') core.limits.current = m.limits;
    else if (m.t === 'metrics') void metrics.getMetricsAsJSON().then((families) => post({ t: 'metrics', id: m.id, families }));
    else void shutdown(m.graceMs);
  });
  const shutdown = async (graceMs: number): Promise<void> => {
    await listener?.shutdown(graceMs);
    await memory.shutdown();
    core.overLimit.shutdown();
    core.signals?.shutdown();
    await core.buckets.close();
    post({ t: 'closed' });
  };
  core.overLimit.start();
  core.signals?.start();
  void memory.start();
}
