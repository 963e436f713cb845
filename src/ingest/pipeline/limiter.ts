import { Counter, Gauge, type Registry } from 'prom-client';
import { RequestTooLarge, RetryableError } from './errors.js';

/** Options for createMemoryLimiter. */
export interface MemoryLimiterOptions {
  /** Hard limit of bytes buffered in the pipeline. */
  limitBytes: number;
  /** Headroom below the hard limit: data is refused once buffered bytes pass limit - spike. */
  spikeBytes: number;
  metrics: Registry;
}

/** Bounds the bytes the ingest pipeline holds in memory (requests being decoded, rows not yet stored or queued). */
export interface MemoryLimiter {
  /**
   * Reserves bytes for a request that already holds `held` of them. Throws RequestTooLarge when
   * held + bytes passes the hard limit (the request can never fit), RetryableError when it would
   * pass the soft limit while other requests hold memory. With `force`, the bytes are counted but
   * never refused (data of a request that was already admitted). With `share`, the soft limit is
   * that share of itself (memory for data not read yet leaves room for data already read).
   */
  acquire(bytes: number, options?: { force?: boolean; held?: number; share?: number }): void;
  /**
   * Throws as acquire would for a request that will need `bytes` in all and holds `held` now, and
   * reserves nothing: a request whose declared size could never fit, or does not fit now, is refused
   * before its body is read, while one that sends nothing holds nothing.
   */
  check(bytes: number, held?: number): void;
  /**
   * Whether acquire(bytes, { share }) would take `bytes` now, for a request holding nothing: false
   * instead of a RetryableError (a caller that waits for room asks again; nothing is counted as
   * refused). Throws RequestTooLarge when the bytes could never fit.
   */
  hasRoom(bytes: number, share?: number): boolean;
  /** Returns bytes reserved by acquire. */
  release(bytes: number): void;
  readonly buffered: number;
}

/** Creates the memory limiter (the Collector's memory_limiter, counted in bytes the pipeline holds). */
export function createMemoryLimiter(options: MemoryLimiterOptions): MemoryLimiter {
  const soft = Math.max(1, options.limitBytes - options.spikeBytes);
  let buffered = 0;
  new Gauge({
    name: 'heimdall_memory_limiter_buffered_bytes',
    help: 'Bytes of telemetry the pipeline holds in memory (requests being decoded, as estimated, and rows).',
    registers: [options.metrics],
    collect() {
      this.set(buffered);
    },
  });
  new Gauge({ name: 'heimdall_memory_limiter_soft_limit_bytes', help: 'Buffered bytes above which new data is refused.', registers: [options.metrics] }).set(soft);
  const refused = new Counter({ name: 'heimdall_memory_limiter_refused_total', help: 'Requests refused (retryable) because the pipeline held too much data.', registers: [options.metrics] });
  const tooLarge = new Counter({ name: 'heimdall_memory_limiter_too_large_total', help: 'Requests refused for good: alone they need more memory than ingest.memory.limit.', registers: [options.metrics] });
  /** Throws RequestTooLarge when a request holding `held` could never take `bytes` more. */
  const checkFits = (bytes: number, held: number): void => {
    if (held + bytes <= options.limitBytes) return;
    tooLarge.inc();
    throw new RequestTooLarge(`the request needs about ${held + bytes} bytes of memory to decode, more than ingest.memory.limit (${options.limitBytes} bytes)`);
  };
  // A single request larger than the soft limit is still let through when nothing else is buffered.
  const full = (bytes: number, held: number, share: number): boolean => buffered - held > 0 && buffered + bytes > soft * share;
  /** Throws when a request holding `held` could not take `bytes` more now (see acquire). */
  const check = (bytes: number, held = 0, share = 1): void => {
    checkFits(bytes, held);
    if (full(bytes, held, share)) {
      refused.inc();
      throw new RetryableError(`memory limit: ${buffered} bytes buffered, soft limit ${soft}`, 1_000);
    }
  };
  return {
    check,
    hasRoom(bytes, share = 1) {
      checkFits(bytes, 0);
      return !full(bytes, 0, share);
    },
    acquire(bytes, { force = false, held = 0, share = 1 } = {}) {
      if (!force) check(bytes, held, share);
      buffered += bytes;
    },
    release(bytes) {
      buffered = Math.max(0, buffered - bytes);
    },
    get buffered() {
      return buffered;
    },
  };
}
