import type { HealthReporter } from '../../health/registry.js';

/** What a part of the queue can be waiting on: its appends and its consumer (the disk), or storage. */
export type QueueCondition = 'append' | 'consumer' | 'storage';

/**
 * The queue's health as one component: `ready`, or `degraded` with why it waits. Appends or the
 * consumer failing on the disk stall the queue; waiting for storage does not (storage reports itself).
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
  const report = (): void => {
    const all = [...reasons.values()];
    if (started) reporter.set(all.length > 0 ? 'degraded' : 'ready', all.join('; '));
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
      const disk = ['append', 'consumer'].map((c) => reasons.get(c as QueueCondition)).filter((r) => r !== undefined);
      return disk.length > 0 ? disk.join('; ') : undefined;
    },
  };
}
