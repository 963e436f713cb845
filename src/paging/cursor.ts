import { createHash } from 'node:crypto';
import { AgentError } from '../errors/agent-error.js';

/**
 * A page cursor: where the previous page ended (time and tiebreaker id of its last row), the
 * time range pinned by the first page (so rows written later never shift pages), and a hash of
 * the filters it was made for.
 */
export interface Cursor {
  /** Range start and end, nanoseconds since the epoch, as decimal text. */
  start: string;
  end: string;
  /** Time (nanoseconds) and id of the last row returned. */
  lastTime: string;
  lastId: string;
  /** Hash of the filters: a token is only valid with the request that produced it. */
  filters: string;
}

/** A short hash of a request's filters (everything but page size and token). */
export function filterHash(filters: unknown): string {
  const text = JSON.stringify(filters, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/** Encodes a cursor as an opaque page token. */
export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([1, c.start, c.end, c.lastTime, c.lastId, c.filters])).toString('base64url');
}

/** Decodes a page token made for `filters`; INVALID_ARGUMENT when it is not one, or was made for other filters. */
export function decodeCursor(token: string, filters: string): Cursor {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parts = undefined;
  }
  const int64 = (p: unknown) => typeof p === 'string' && /^\d{1,19}$/.test(p) && BigInt(p) <= 9_223_372_036_854_775_807n;
  const ok = Array.isArray(parts) && parts.length === 6 && parts[0] === 1 && parts.slice(1).every((p) => typeof p === 'string') && parts.slice(1, 4).every(int64) && (parts[4] as string).length <= 128;
  if (!ok) throw new AgentError('invalid_argument', 'page_token: not a token from this API');
  const [, start, end, lastTime, lastId, hash] = parts as string[];
  if (hash !== filters) throw new AgentError('invalid_argument', 'page_token: made for different filters; repeat the request that returned it, changing only page_token');
  return { start: start ?? '', end: end ?? '', lastTime: lastTime ?? '', lastId: lastId ?? '', filters };
}
