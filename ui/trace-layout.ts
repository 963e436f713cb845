/**
 * A GetTrace timeline laid out for the waterfall: each item's depth and its place on the trace's time
 * axis (percent of the trace's span), service colours, and durations as text. DOM-free (unit-tested under Node).
 */
import type { LogRecord } from './api/types.js';
import type { Span, TimelineItem, TraceEvent } from './api/trace-types.js';

/** One row of the waterfall, in GetTrace's (tree) order. */
export type WaterfallRow =
  | { kind: 'span'; span: Span; depth: number; offsetUs: number; left: number; width: number }
  | { kind: 'log'; log: LogRecord; depth: number; offsetUs: number; left: number }
  | { kind: 'event'; event: TraceEvent; depth: number; offsetUs: number; left: number };

/** A trace laid out: rows in tree order, its start (µs since the epoch), its length (µs), its services by name. */
export interface TraceLayout {
  rows: WaterfallRow[];
  startUs: number;
  durationUs: number;
  services: string[];
}

/**
 * An RFC 3339 timestamp (proto3 JSON, up to 9 fractional digits) as microseconds since the epoch;
 * NaN when malformed. (Date keeps only milliseconds.)
 */
export function timeUs(iso: string | undefined): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso ?? '');
  if (!m) return Number.NaN;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  return seconds * 1000 + Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
}

/** A duration in milliseconds as `850µs`, `12.3ms`, `250ms`, `1.25s`, `2m 5s`. */
export function formatMs(ms: number): string {
  if (ms === 0) return '0ms';
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 100) return `${Number(ms.toFixed(ms < 10 ? 2 : 1))}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(2))}s`;
  return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
}

/** Distinct colours for services (readable on light and dark), by a service's index in TraceLayout.services. */
const PALETTE = ['#3b7dd8', '#e07b39', '#2e9e6a', '#9c5bd1', '#c9a227', '#1fa3b3', '#d1568f', '#6d8a2e', '#8a6d5a', '#5566c4'];

/** The colour of the `index`th service. */
export function serviceColor(index: number): string {
  return PALETTE[((index % PALETTE.length) + PALETTE.length) % PALETTE.length] ?? '#888';
}

/**
 * Lays out `items` (GetTrace order): the trace starts at its earliest span (or item when it has no
 * span) and ends at the latest span end or item; a span's bar starts at its offset and is as wide as
 * its duration, in percent of the trace; a log record or event sits one level under the span it names
 * (at depth 0 when that span is not stored).
 */
export function layoutTrace(items: TimelineItem[]): TraceLayout {
  const spans = items.flatMap((i) => (i.span ? [i.span] : []));
  const times = items.map((i) => timeUs(i.span?.startTime ?? i.time)).filter((t) => !Number.isNaN(t));
  const ends = spans.map((s) => timeUs(s.startTime) + (s.durationMs ?? 0) * 1000).filter((t) => !Number.isNaN(t));
  const spanStarts = spans.map((s) => timeUs(s.startTime)).filter((t) => !Number.isNaN(t));
  const startUs = spanStarts.length > 0 ? Math.min(...spanStarts) : times.length > 0 ? Math.min(...times) : 0;
  const endUs = Math.max(startUs, ...ends, ...times);
  const durationUs = endUs - startUs;
  const pct = (us: number) => (durationUs > 0 ? Math.min(100, Math.max(0, ((us - startUs) / durationUs) * 100)) : 0);
  const depthOf = new Map(spans.map((s) => [s.spanId ?? '', s.depth ?? 0]));
  const noteDepth = (spanId: string | undefined) => (spanId && depthOf.has(spanId) ? (depthOf.get(spanId) ?? 0) + 1 : 0);
  const rows = items.flatMap((i): WaterfallRow[] => {
    if (i.span) {
      const at = timeUs(i.span.startTime);
      const width = durationUs > 0 ? ((i.span.durationMs ?? 0) * 1000 * 100) / durationUs : 100;
      return [{ kind: 'span', span: i.span, depth: i.span.depth ?? 0, offsetUs: at - startUs, left: pct(at), width: Math.min(width, 100 - pct(at)) }];
    }
    const at = timeUs(i.time);
    if (i.log) return [{ kind: 'log', log: i.log, depth: noteDepth(i.log.spanId), offsetUs: at - startUs, left: pct(at) }];
    if (i.event) return [{ kind: 'event', event: i.event, depth: noteDepth(i.event.spanId), offsetUs: at - startUs, left: pct(at) }];
    return [];
  });
  const services = [...new Set(spans.map((s) => s.serviceName ?? ''))].sort();
  return { rows, startUs, durationUs, services };
}
