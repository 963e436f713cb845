import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { TokenDigest } from '../../auth/auth.js';
import type { Config } from '../../config/schema.js';
import type { ErrorCode, FieldViolation } from '../../errors/agent-error.js';
import type { ComponentState } from '../../health/registry.js';
import type { HoneypotHitReport } from '../honeypot-hits.js';
import type { RateLimitConfig } from '../limits.js';
import type { OverLimitRecord } from '../over-limit.js';
import type { SecuritySnapshot } from '../security-policy.js';
import type { SecuritySignals } from '../signals.js';

/**
 * The messages between the main thread and the rate-limit worker (one MessagePort, the worker's
 * own). Requests and answers travel as wire bytes whose buffers are transferred, correlated by id.
 */

/** What the worker starts from (its workerData). */
export interface WorkerInit {
  /** The `ratelimit` section: buckets, Redis, over-limit window, security config. */
  ratelimit: Config['ratelimit'];
  /** `server.ratelimit`, its connection caps fitted to the open-file limit. */
  listener: Config['server']['ratelimit'];
  /** `telemetry.metrics`: label bounds of the request-labelled families. */
  metrics: Pick<Config['telemetry']['metrics'], 'max_label_length' | 'max_family_size' | 'max_series'>;
  /** `log.level`. */
  logLevel: string;
  /** A test clock in shared memory: [0] is the buckets' monotonic milliseconds; none: performance.now. */
  clock: Float64Array | undefined;
  /** The API tokens as the listener checks them (empty: auth off). */
  tokens: TokenDigest[];
  /** The security state at start; none: nothing is refused by it. */
  security: SecuritySnapshot | undefined;
  /** The limits as last loaded from the limits files (the main thread loads and watches them). */
  limits: RateLimitConfig;
}

/** A family of the worker's registry, as prom-client's getMetricsAsJSON gives it. */
export type MetricFamily = MetricObjectWithValues<MetricValue<string>>;

/** Main thread to worker. */
export type ToWorker =
  /** Bind the listener (the agent starts). */
  | { t: 'listen' }
  | { t: 'check'; id: number; bytes: Uint8Array }
  | { t: 'security'; snapshot: SecuritySnapshot }
  | { t: 'tokens'; tokens: TokenDigest[] }
  /** The limits files were loaded again. */
  | { t: 'limits'; limits: RateLimitConfig }
  | { t: 'metrics'; id: number }
  | { t: 'shutdown'; graceMs: number };

/** Worker to main thread. */
export type FromWorker =
  /** Serving; `port` is the listener's (0: `server.ratelimit.enabled` is off). */
  | { t: 'listening'; port: number }
  /** Could not start (the listener's bind); the message says why. */
  | { t: 'failed'; message: string }
  | { t: 'answer'; id: number; bytes: Uint8Array }
  /** A check refused (an AgentError's code) or failed (no code: internal). */
  | { t: 'error'; id: number; code: ErrorCode | undefined; message: string; violations: FieldViolation[] | undefined }
  | { t: 'health'; component: string; state: ComponentState; reason: string }
  | { t: 'log'; line: string }
  | { t: 'overLimit'; records: OverLimitRecord[] }
  /** Refusals and incidents for automation rules, at most once a second, only when any. */
  | { t: 'signals'; signals: SecuritySignals }
  /** A honeypot hit: its entities are blocked in the worker's overlay until a security snapshot acknowledges `hit.seq`. */
  | { t: 'honeypotHit'; hit: HoneypotHitReport }
  | { t: 'metrics'; id: number; families: MetricFamily[] }
  /** Shut down: the listener closed, records flushed, Redis disconnected. */
  | { t: 'closed' };
