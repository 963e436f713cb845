import type { HealthReporter } from '../../health/registry.js';

/**
 * What a part of the queue can be waiting on: its appends and its consumer failing on the disk
 * (`append`, `consumer`); storage (`storage`); or disk space for its checkpoint while it drains
 * without one (`checkpoint`).
 */
export type QueueCondition = 'append' | 'consumer' | 'storage' | 'checkpoint';

/** Conditions that stall the queue: it cannot take data or cannot drain by itself. */
const STALLS: ReadonlySet<QueueCondition> = new Set(['append', 'consumer']);

/**
 * The queue's health as one component: `ready`; `failed` with the reason while it is stalled on its
 * disk (appends failing, or the consumer unable to go on), so the strict readiness turns off at
 * once; `degraded` with why it waits when it only waits (storage unavailable, no checkpoint yet).
 */
export interface QueueStatus {
  /** Starts reporting (the component is `starting` until then). */
  start(): void;
  /** Sets what a part of the queue waits for, or clears it (undefined). */
  set(condition: QueueCondition, reason: string | undefined): void;
  /** Why the queue cannot append or consume on its own (the disk), or undefined. */
  readonly stalled: string | undefined;
}

/** Creates the queue's status over its health reporter. */
export function createQueueStatus(reporter: HealthReporter): QueueStatus {
  const reasons = new Map<QueueCondition, string>();
  let started = false;
  const stalls = (): string[] => [...reasons].filter(([c]) => STALLS.has(c)).map(([, r]) => r);
  const report = (): void => {
    if (!started) return;
    const all = [...reasons.values()];
    reporter.set(stalls().length > 0 ? 'failed' : all.length > 0 ? 'degraded' : 'ready', all.join('; '));
  };
  return {
    start() {
      started = true;
      report();
    },
    set(condition, reason) {
      if (reasons.get(condition) === reason) return;
      if (reason === undefined) reasons.delete(condition);
      else reasons.set(condition, reason);
      report();
    },
    get stalled() {
      const disk = stalls();
      return disk.length > 0 ? disk.join('; ') : undefined;
    },
  };
}
