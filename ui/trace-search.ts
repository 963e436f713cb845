/**
 * A trace search as its URL holds it (`/ui/traces?service=..&operation=..&attr=k%3Dv&min=250ms&max=2s&status=error&since=1h&limit=50`)
 * and as the SearchTraces request it makes. DOM-free (unit-tested under Node).
 */
import { isWindow, windowRange, type Window } from './time.js';

/** Span statuses the search offers (`SpanStatus` without the prefix). */
export const SPAN_STATUSES = ['error', 'ok', 'unset'] as const;
/** Page sizes the search offers; SearchTraces takes at most 200. */
export const LIMITS = [20, 50, 100, 200] as const;
/** Attribute filters SearchTraces takes at most. */
export const MAX_ATTRIBUTES = 16;

/** The filters of a search, as typed (durations as text). */
export interface TraceSearch {
  service: string;
  operation: string;
  /** `key=value` pairs; a row with an empty key is ignored. */
  attrs: Array<{ key: string; value: string }>;
  min: string;
  max: string;
  /** One of SPAN_STATUSES, or empty for any. */
  status: string;
  since: Window;
  limit: number;
}

const DURATION_UNITS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * `250ms`, `1.5s`, `2m`, `800us` (or a bare number of milliseconds) as milliseconds; undefined when
 * malformed. (The agent's own parser, src/config/units.ts, takes whole milliseconds and brings zod.)
 */
export function parseDurationMs(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (DURATION_UNITS[m[2] ?? 'ms'] ?? Number.NaN);
}

/** Reads a search from a URL's query; unknown or malformed values fall back to the defaults. */
export function readTraceSearch(query: URLSearchParams): TraceSearch {
  const since = query.get('since');
  const status = query.get('status') ?? '';
  const limit = Number(query.get('limit'));
  const attrs = query
    .getAll('attr')
    .slice(0, MAX_ATTRIBUTES)
    .map((a) => {
      const eq = a.indexOf('=');
      return eq < 0 ? { key: a, value: '' } : { key: a.slice(0, eq), value: a.slice(eq + 1) };
    });
  return {
    service: query.get('service') ?? '',
    operation: query.get('operation') ?? '',
    attrs,
    min: query.get('min') ?? '',
    max: query.get('max') ?? '',
    status: (SPAN_STATUSES as readonly string[]).includes(status) ? status : '',
    since: isWindow(since) ? since : '1h',
    limit: (LIMITS as readonly number[]).includes(limit) ? limit : LIMITS[0],
  };
}

/** The query string of a search (without `?`): only what differs from the defaults, `since` always. */
export function traceSearchQuery(s: TraceSearch): string {
  const q = new URLSearchParams();
  if (s.service) q.set('service', s.service);
  if (s.operation) q.set('operation', s.operation);
  for (const a of s.attrs) if (a.key.trim()) q.append('attr', `${a.key.trim()}=${a.value}`);
  if (s.min.trim()) q.set('min', s.min.trim());
  if (s.max.trim()) q.set('max', s.max.trim());
  if (s.status) q.set('status', s.status);
  q.set('since', s.since);
  if (s.limit !== LIMITS[0]) q.set('limit', String(s.limit));
  return q.toString();
}

/** The SearchTraces request body (proto3 JSON) of a search over the window ending at `now`, or what is wrong with it. */
export function traceSearchRequest(s: TraceSearch, now: number, pageToken = ''): { body: Record<string, unknown> } | { problem: string } {
  const min = s.min.trim() ? parseDurationMs(s.min) : 0;
  const max = s.max.trim() ? parseDurationMs(s.max) : 0;
  if (min === undefined) return { problem: `Minimum duration "${s.min}" is not a duration (250ms, 1.5s, 2m).` };
  if (max === undefined) return { problem: `Maximum duration "${s.max}" is not a duration (250ms, 1.5s, 2m).` };
  if (max > 0 && min > max) return { problem: 'The minimum duration is above the maximum.' };
  return {
    body: {
      ...windowRange(s.since, now),
      serviceName: s.service,
      spanName: s.operation,
      attributes: s.attrs.filter((a) => a.key.trim()).map((a) => ({ key: a.key.trim(), value: a.value })),
      minDurationMs: min,
      maxDurationMs: max,
      status: s.status ? `SPAN_STATUS_${s.status.toUpperCase()}` : 'SPAN_STATUS_UNSPECIFIED',
      pageSize: s.limit,
      pageToken,
    },
  };
}
