import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import type { WebhookConfig } from '../config/automation.js';
import type { Component } from '../lifecycle/lifecycle.js';
import type { Logger } from '../telemetry/logger.js';
import { VERSION } from '../version.js';
import { createDeliveryQueue, type Delivery } from './delivery-queue.js';
import type { Notify, SecurityNotification } from './notification.js';
import { createDropLog, webhookMetrics } from './webhook-metrics.js';

/** Requests in flight at once. */
const MAX_IN_FLIGHT = 4;

/** Options for createWebhookNotifier. */
export interface WebhookNotifierOptions {
  logger: Logger;
  /** Registry for `heimdall_notifications_total`, `heimdall_notification_attempts_total`, `heimdall_notifications_pending`. */
  metrics: Registry;
  /** Notifications queued, in flight or waiting to retry, at most; past it new ones are dropped (default 1000). */
  maxQueued?: number;
  /** The `agent` field of every body (default the host name: the pod's name in Kubernetes). */
  agent?: string;
}

/** The webhook notifier as the agent drives it: `notify` hands over, the lifecycle stops it. */
export interface WebhookNotifier extends Component {
  /** Queues a delivery; never throws, never waits. Dropped (and counted) when the queue is full or the notifier is stopping. */
  readonly notify: Notify;
}

/**
 * Creates the webhook notifier: each notification is POSTed as JSON to its webhook, at most 4 at a
 * time, retried with backoff on network errors, timeouts, 408, 429 and 5xx, given up on any other
 * status. Logs name a webhook by its origin only (its path, query and headers may carry secrets).
 * `shutdown(graceMs)` (default 5 s) lets pending deliveries finish within the grace, then drops the
 * rest; safe to call twice.
 */
export function createWebhookNotifier(options: WebhookNotifierOptions): WebhookNotifier {
  const logger = options.logger.child({ component: 'notify' });
  const agent = options.agent ?? hostname();
  const maxQueued = options.maxQueued ?? 1000;
  const metrics = webhookMetrics(options.metrics);
  const queue = createDeliveryQueue({ maxPending: maxQueued, maxInFlight: MAX_IN_FLIGHT, logger, metrics: options.metrics });
  const drops = createDropLog({ logger, count: (result) => metrics.notifications.inc({ result }) });
  let stopped: Promise<void> | undefined;

  return {
    name: 'notify',
    notify(webhook, notification) {
      if (stopped) return drops.dropped('the agent is shutting down');
      let delivery: Delivery;
      try {
        delivery = webhookDelivery(webhook, notification, agent);
      } catch (err) {
        logger.error({ error: err instanceof Error ? err.name : 'error', action_id: notification.action_id }, 'cannot build the webhook notification');
        metrics.notifications.inc({ result: 'failed' });
        return;
      }
      if (!queue.add(delivery)) return drops.dropped(`${maxQueued} are pending (the queue bound)`);
      drops.taken();
    },
    async start() {},
    shutdown(graceMs = 5_000) {
      stopped ??= queue.drain(graceMs).then((dropped) => {
        if (dropped > 0) logger.warn({ dropped }, `shutdown: ${dropped} webhook notifications not delivered within the grace were dropped`);
      });
      return stopped;
    },
  };
}

/**
 * The delivery of `notification` to `webhook`: the notification as JSON plus `source` and `agent`, the
 * webhook's headers (credentials in the URL as Basic authorization), and an `idempotency-key` (the
 * action id and a digest of the URL) that is the same on every attempt and on every agent, so that a
 * receiver can drop a duplicate.
 */
function webhookDelivery(webhook: WebhookConfig, notification: SecurityNotification, agent: string): Delivery {
  const url = new URL(webhook.url);
  const headers = new Headers(webhook.headers);
  if (url.username || url.password) {
    // fetch refuses a URL with credentials: they go as Basic authorization (unless one is configured).
    if (!headers.has('authorization')) headers.set('authorization', `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`);
    url.username = url.password = '';
  }
  headers.set('content-type', 'application/json');
  headers.set('user-agent', `heimdall/${VERSION}`);
  headers.set('idempotency-key', `${notification.action_id}.${createHash('sha256').update(webhook.url).digest('base64url').slice(0, 16)}`);
  return {
    request: { url: url.href, headers, body: JSON.stringify({ ...notification, source: 'heimdall', agent }), timeoutMs: webhook.timeout },
    retries: webhook.retries,
    backoffMs: webhook.backoff,
    log: { webhook: url.origin, rule: notification.rule, kind: notification.kind, action_id: notification.action_id },
  };
}
