import type { Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';
import { sleep } from '../time/backoff.js';
import { webhookMetrics, type NotificationResult } from './webhook-metrics.js';
import { postWebhook, retryDelayMs, type AttemptResult, type WebhookRequest } from './webhook-request.js';

/** One notification on its way to one webhook. */
export interface Delivery {
  request: WebhookRequest;
  /** Attempts allowed after the first. */
  retries: number;
  /** Wait before the first retry (doubled for each next one). */
  backoffMs: number;
  /** Logged with its failure: no URL path, query or header value in there. */
  log: Record<string, string>;
}

/** Options for createDeliveryQueue. */
export interface DeliveryQueueOptions {
  /** Deliveries queued, in flight or waiting to retry, at most. */
  maxPending: number;
  /** Requests in flight at once, at most. */
  maxInFlight: number;
  logger: Logger;
  metrics: Registry;
}

/** Sends deliveries, a few at a time, retrying those that may succeed later; every delivery is counted once by how it ended. */
export interface DeliveryQueue {
  /** Takes a delivery; false (and not taken) when `maxPending` are pending or the queue is draining. */
  add(delivery: Delivery): boolean;
  /**
   * Takes no more, drops the retries due past `graceMs`, waits up to `graceMs` for the rest to end,
   * then aborts those in flight and drops what is left. Resolves with the number dropped.
   */
  drain(graceMs: number): Promise<number>;
}

interface Entry {
  delivery: Delivery;
  attempts: number;
}

/** Creates a delivery queue. */
export function createDeliveryQueue(options: DeliveryQueueOptions): DeliveryQueue {
  const { logger } = options;
  const metrics = webhookMetrics(options.metrics);
  const ready: Entry[] = [];
  const waiting = createRetryWait<Entry>();
  const running = new Set<Promise<void>>();
  const stop = new AbortController();
  let inFlight = 0;
  let deadline = Number.POSITIVE_INFINITY;
  let dropped = 0;
  let onEmpty: (() => void) | undefined;

  const pending = (): number => ready.length + waiting.size + inFlight;
  const end = (result: NotificationResult): void => {
    metrics.notifications.inc({ result });
    metrics.pending.dec();
    if (result === 'dropped') dropped++;
    if (pending() === 0) onEmpty?.();
  };
  const pump = (): void => {
    while (inFlight < options.maxInFlight) {
      const e = ready.shift();
      if (!e) return;
      inFlight++;
      const sent = send(e)
        .catch((err: unknown) => logger.error({ err }, 'webhook delivery failed unexpectedly'))
        .finally(() => running.delete(sent));
      running.add(sent);
    }
  };
  const send = async (e: Entry): Promise<void> => {
    e.attempts++;
    const result = await postWebhook(e.delivery.request, stop.signal);
    inFlight--;
    metrics.attempts.inc({ outcome: result.outcome });
    settle(e, result);
    if (!stop.signal.aborted) pump();
  };
  const settle = (e: Entry, r: AttemptResult): void => {
    if (r.outcome === 'ok') return end('delivered');
    if (stop.signal.aborted) return end('dropped');
    const fields = { ...e.delivery.log, attempts: e.attempts, status: r.status, error: r.outcome === 'retryable' ? r.error : undefined };
    if (r.outcome === 'refused' || e.attempts > e.delivery.retries) {
      logger.warn(fields, r.outcome === 'refused' ? 'webhook refused the notification; not retried' : 'webhook notification failed; retries exhausted');
      return end('failed');
    }
    const delayMs = Math.round(retryDelayMs(e.attempts, e.delivery.backoffMs, r.retryAfterMs));
    if (Date.now() + delayMs > deadline) return end('dropped');
    logger.debug({ ...fields, delayMs }, 'webhook notification failed; retrying');
    waiting.wait(e, delayMs, () => {
      ready.push(e);
      pump();
    });
  };

  return {
    add(delivery) {
      if (pending() >= options.maxPending || deadline !== Number.POSITIVE_INFINITY) return false;
      metrics.pending.inc();
      ready.push({ delivery, attempts: 0 });
      pump();
      return true;
    },
    async drain(graceMs) {
      deadline = Date.now() + graceMs;
      waiting.cancel((dueAt) => dueAt > deadline).forEach(() => end('dropped'));
      if (pending() > 0) {
        const empty = new AbortController();
        onEmpty = () => empty.abort();
        await sleep(graceMs, empty.signal);
      }
      stop.abort();
      ready.splice(0).forEach(() => end('dropped'));
      waiting.cancel(() => true).forEach(() => end('dropped'));
      await Promise.allSettled(running);
      return dropped;
    },
  };
}

/** Deliveries waiting to be retried, each on its own timer. */
interface RetryWait<T> {
  readonly size: number;
  /** Calls `due` after `delayMs` (once `item` no longer counts as waiting). */
  wait(item: T, delayMs: number, due: () => void): void;
  /** Stops the waits whose due time `which` selects; returns their items. */
  cancel(which: (dueAt: number) => boolean): T[];
}

function createRetryWait<T>(): RetryWait<T> {
  const waiting = new Map<T, { timer: NodeJS.Timeout; dueAt: number }>();
  return {
    get size() {
      return waiting.size;
    },
    wait(item, delayMs, due) {
      const timer = setTimeout(() => {
        waiting.delete(item);
        due();
      }, delayMs);
      waiting.set(item, { timer, dueAt: Date.now() + delayMs });
    },
    cancel(which) {
      const cancelled = [...waiting].filter(([, w]) => which(w.dueAt));
      for (const [item, w] of cancelled) {
        clearTimeout(w.timer);
        waiting.delete(item);
      }
      return cancelled.map(([item]) => item);
    },
  };
}
