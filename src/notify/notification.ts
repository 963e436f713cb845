import type { WebhookConfig } from '../config/automation.js';

/**
 * What automation tells a webhook (the JSON body of one POST): an automatic mode change (elevation,
 * lockdown, back to normal) or an automatic block. `text` is one line for people (chat tools show it).
 */
export interface SecurityNotification {
  kind: 'mode' | 'block';
  /** The rule or honeypot that acted. */
  rule: string;
  text: string;
  reason: string;
  /** The executed action (ListActions shows it). */
  action_id: string;
  /** When it was executed, RFC 3339. */
  time: string;
  /** kind mode: the mode now and before. */
  mode?: string;
  previous_mode?: string;
  /** kind block: the entity (`key=value`) and when its block ends, RFC 3339. */
  entity?: string;
  expires_at?: string;
}

/** Hands a notification to a webhook; never throws, never waits (delivery, retries and bounds are the notifier's). */
export type Notify = (webhook: WebhookConfig, notification: SecurityNotification) => void;

/** The notification of an automatic block of `entity` by `rule` for `seconds`, made by `action` (its id, reason and decision time in ms); `why` ends the text. */
export function blockNotification(rule: string, action: { id: string; reason: string; decidedAt: number }, entity: string, seconds: number, why: string): SecurityNotification {
  const expires = new Date(action.decidedAt + seconds * 1000).toISOString();
  return { kind: 'block', rule, text: `Heimdall blocked ${entity} until ${expires}: ${why}`, reason: action.reason, action_id: action.id, time: new Date(action.decidedAt).toISOString(), entity, expires_at: expires };
}
