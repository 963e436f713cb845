import type { MemoryLimiter } from './limiter.js';

/** The memory held for one request while it is read, decoded and converted. */
export interface Admission {
  /**
   * Reserves room for `bytes` more of the request's body (as read, or as decompressed). Throws
   * RetryableError when there is no room now (memory, shutting down), RequestTooLarge when the
   * request can never fit (its memory alone passes ingest.memory.limit).
   */
  grow(bytes: number): void;
  /**
   * Throws as grow would for a body of `bytes` in all (a declared Content-Length): RequestTooLarge
   * when it could never fit, RetryableError when it does not fit now. Reserves nothing.
   */
  expect(bytes: number): void;
  /** Sets the memory reserved to `bytes` (the request's decoded size, once known), reserving more (throws as grow) or giving back. */
  settle(bytes: number): void;
  /** Gives the memory back. Safe to call twice. */
  release(): void;
}

/**
 * An admission of `bytes × perByte` against `limiter` (`perByte`: the memory the request's
 * decoder is expected to take per byte of body), within `share` of the soft limit while it grows.
 * Throws as Admission.grow.
 */
export function createAdmission(limiter: MemoryLimiter, bytes: number, perByte: number, share: number): Admission {
  let held = 0;
  let released = false;
  const admission: Admission = {
    grow(more) {
      const need = more * perByte;
      limiter.acquire(need, { held, share });
      held += need;
    },
    expect(body) {
      limiter.check(body * perByte - held, held);
    },
    settle(total) {
      if (total > held) limiter.acquire(total - held, { held });
      else limiter.release(held - total);
      held = total;
    },
    release() {
      if (!released) limiter.release(held);
      released = true;
    },
  };
  admission.grow(bytes);
  return admission;
}
