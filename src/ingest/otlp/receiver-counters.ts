import { Counter, type Registry } from 'prom-client';
import { RetryableError } from '../pipeline/errors.js';

/** What one item of a signal is called in metric names. */
export type Item = 'spans' | 'log_records' | 'metric_points';

/** The Collector's receiver counters: heimdall_receiver_{accepted,refused,rejected,failed}_{spans,log_records,metric_points}_total, by transport. */
export interface ReceiverCounters {
  /** Items rejected as invalid (reported in partial_success). */
  rejected(item: Item, transport: string, count: number): void;
  /** Items stored (or queued with ack: queued). */
  accepted(item: Item, transport: string, count: number): void;
  /** Items not stored because of `err`: refused (retryable) or failed (anything else). */
  lost(item: Item, transport: string, count: number, err: unknown): void;
}

/** Creates the receiver counters in `metrics`. */
export function createReceiverCounters(metrics: Registry): ReceiverCounters {
  const counters = (kind: string, help: string) =>
    Object.fromEntries(
      (['spans', 'log_records', 'metric_points'] as const).map((item) => [
        item,
        new Counter({ name: `heimdall_receiver_${kind}_${item}_total`, help: help.replace('Items', item.replace('_', ' ')), labelNames: ['transport'] as const, registers: [metrics] }),
      ]),
    ) as Record<Item, Counter<'transport'>>;
  const accepted = counters('accepted', 'Items accepted (stored, or queued with ack: queued), by transport.');
  const refused = counters('refused', 'Items refused with a retryable error (memory, queue full, storage unavailable), by transport.');
  const rejected = counters('rejected', 'Items rejected as invalid and reported in partial_success, by transport.');
  const failed = counters('failed', 'Items lost to an internal error, by transport.');
  return {
    rejected(item, transport, count) {
      if (count > 0) rejected[item].inc({ transport }, count);
    },
    accepted(item, transport, count) {
      accepted[item].inc({ transport }, count);
    },
    lost(item, transport, count, err) {
      (err instanceof RetryableError ? refused : failed)[item].inc({ transport }, count);
    },
  };
}
