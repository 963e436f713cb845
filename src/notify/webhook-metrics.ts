import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';
import { perRegistry } from '../telemetry/metrics.js';

/** How a notification ended: delivered (2xx), failed (refused, or retries exhausted), dropped (queue full, or shutdown). */
export type NotificationResult = 'delivered' | 'failed' | 'dropped';

/** The notifier's metrics: labels are bounded (no URL, no rule name). */
export function webhookMetrics(registry: Registry) {
  return perRegistry(registry, 'notify', () => ({
    notifications: new Counter({
      name: 'heimdall_notifications_total',
      help: 'Webhook notifications by how they ended: delivered, failed (refused, or retries exhausted), dropped (queue full, or shutdown).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    attempts: new Counter({
      name: 'heimdall_notification_attempts_total',
      help: 'Webhook POSTs by outcome: ok (2xx), retryable (network error, timeout, 408, 429, 5xx), refused (any other status).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    pending: new Gauge({
      name: 'heimdall_notifications_pending',
      help: 'Webhook notifications queued, in flight or waiting to retry (at most the queue bound).',
      registers: [registry],
    }),
  }));
}

/** Counts drops and logs them once per burst: one line when dropping starts, one with the count when it ends. */
export interface DropLog {
  /** Counts one drop; logs `why` when it starts a burst. */
  dropped(why: string): void;
  /** Ends a burst (a notification was taken again), logging how many were dropped. */
  taken(): void;
}

/** Creates the drop log of a notifier. */
export function createDropLog(options: { logger: Logger; count: (result: NotificationResult) => void }): DropLog {
  let burst = 0;
  return {
    dropped(why) {
      options.count('dropped');
      if (burst++ === 0) options.logger.warn(`dropping webhook notifications: ${why}`);
    },
    taken() {
      if (burst === 0) return;
      options.logger.warn({ dropped: burst }, `webhook notifications are taken again; ${burst} dropped`);
      burst = 0;
    },
  };
}
