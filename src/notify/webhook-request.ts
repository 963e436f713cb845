import { backoffMs, jittered } from '../time/backoff.js';

/** Longest wait before a retry, Retry-After included: 5 minutes. */
export const MAX_RETRY_DELAY_MS = 300_000;

/** One POST to a webhook, ready to send (and to send again, unchanged, on a retry). */
export interface WebhookRequest {
  url: string;
  headers: Headers;
  body: string;
  /** Longest wait for the answer's status and headers. */
  timeoutMs: number;
}

/**
 * What one attempt came to: `ok` (2xx); `retryable` (a network error, a timeout, 408, 429 or 5xx,
 * with the server's Retry-After on 429/503); `refused` (any other status, redirects included: sending
 * the same request again would not help).
 */
export type AttemptResult =
  | { outcome: 'ok'; status: number }
  | { outcome: 'retryable'; status?: number; error?: string; retryAfterMs?: number }
  | { outcome: 'refused'; status: number };

const RETRYABLE = new Set([408, 429]);

/**
 * POSTs `request` once, giving up after its timeout or when `signal` aborts. Never rejects. Redirects
 * are not followed and the response body is never read (it is cancelled at once), so a huge or endless
 * answer holds no memory. An error is described by its code only (an error message may quote the URL).
 */
export async function postWebhook(request: WebhookRequest, signal: AbortSignal): Promise<AttemptResult> {
  const timeout = AbortSignal.timeout(request.timeoutMs);
  let res: Response;
  try {
    res = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body, redirect: 'manual', signal: AbortSignal.any([timeout, signal]) });
  } catch (err) {
    return { outcome: 'retryable', error: timeout.aborted ? `timed out after ${request.timeoutMs} ms` : signal.aborted ? 'stopped' : errorCode(err) };
  }
  void res.body?.cancel().catch(() => undefined);
  const status = res.status;
  if (status >= 200 && status < 300) return { outcome: 'ok', status };
  if (status >= 500 || RETRYABLE.has(status)) {
    const retryAfterMs = status === 429 || status === 503 ? retryAfter(res.headers.get('retry-after')) : undefined;
    return retryAfterMs === undefined ? { outcome: 'retryable', status } : { outcome: 'retryable', status, retryAfterMs };
  }
  return { outcome: 'refused', status };
}

/**
 * The wait before retry number `retry` (1 for the first): `backoffMs` doubled for each retry after the
 * first, ±20% jitter, at least the server's Retry-After, at most 5 minutes.
 */
export function retryDelayMs(retry: number, initialMs: number, retryAfterMs = 0): number {
  return Math.min(MAX_RETRY_DELAY_MS, Math.max(jittered(backoffMs(retry, initialMs, MAX_RETRY_DELAY_MS), 0.2), retryAfterMs));
}

/** Retry-After in whole seconds, as ms; undefined when absent or not a number of seconds. */
function retryAfter(value: string | null): number | undefined {
  return value !== null && /^\s*\d{1,9}\s*$/.test(value) ? Number(value) * 1000 : undefined;
}

/** The code of a fetch failure (`ECONNREFUSED`, `UND_ERR_SOCKET`...), else its error name. */
function errorCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  return err instanceof Error ? err.name : 'error';
}
