/** The console's DOM-free trace units (ui/): the trace search's URL and request, and the waterfall's layout. */
import { describe, expect, it } from 'vitest';
import type { TimelineItem } from '../../../ui/api/trace-types.js';
import { formatMs, layoutTrace, serviceColor, timeUs } from '../../../ui/trace-layout.js';
import { LIMITS, MAX_ATTRIBUTES, parseDurationMs, readTraceSearch, traceSearchQuery, traceSearchRequest } from '../../../ui/trace-search.js';

describe('trace search URL', () => {
  it('reads every filter, and writes the same query back', () => {
    const q = 'service=shop&operation=GET+%2Fcheckout&attr=order.id%3Dord%3D1&attr=http.method%3DGET&min=250ms&max=2s&status=error&since=6h&limit=50';
    const s = readTraceSearch(new URLSearchParams(q));
    expect(s).toEqual({
      service: 'shop',
      operation: 'GET /checkout',
      attrs: [
        { key: 'order.id', value: 'ord=1' },
        { key: 'http.method', value: 'GET' },
      ],
      min: '250ms',
      max: '2s',
      status: 'error',
      since: '6h',
      limit: 50,
    });
    expect(traceSearchQuery(s)).toBe(q);
  });

  it('falls back to the defaults for unknown values, and bounds the attribute rows', () => {
    const attrs = Array.from({ length: MAX_ATTRIBUTES + 5 }, (_, i) => `attr=k${i}%3Dv`).join('&');
    const s = readTraceSearch(new URLSearchParams(`status=broken&since=3y&limit=100000&${attrs}`));
    expect(s.status).toBe('');
    expect(s.since).toBe('1h');
    expect(s.limit).toBe(LIMITS[0]);
    expect(s.attrs).toHaveLength(MAX_ATTRIBUTES);
    expect(traceSearchQuery({ ...s, attrs: [{ key: ' ', value: 'x' }] })).toBe('since=1h');
  });
});

describe('trace search request', () => {
  const base = readTraceSearch(new URLSearchParams('service=shop&attr=order.id%3D7&min=1.5s&max=2m&status=error&since=15m'));

  it('is the SearchTraces body in proto3 JSON over the window ending now', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const r = traceSearchRequest(base, now, 'tok');
    expect(r).toEqual({
      body: {
        startTime: '2026-01-01T11:45:00.000Z',
        endTime: '2026-01-01T12:00:00.000Z',
        serviceName: 'shop',
        spanName: '',
        attributes: [{ key: 'order.id', value: '7' }],
        minDurationMs: 1500,
        maxDurationMs: 120_000,
        status: 'SPAN_STATUS_ERROR',
        pageSize: 20,
        pageToken: 'tok',
      },
    });
  });

  it('says what is wrong with a duration instead of searching', () => {
    expect(traceSearchRequest({ ...base, min: 'soon' }, 0)).toEqual({ problem: expect.stringContaining('"soon"') as unknown });
    expect(traceSearchRequest({ ...base, max: '5 parsecs' }, 0)).toEqual({ problem: expect.stringContaining('Maximum') as unknown });
    expect(traceSearchRequest({ ...base, min: '3s', max: '2s' }, 0)).toEqual({ problem: 'The minimum duration is above the maximum.' });
  });

  it('parses durations in µs, ms, s, m and h (bare numbers are milliseconds)', () => {
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('800us')).toBe(0.8);
    expect(parseDurationMs(' 1.5s ')).toBe(1500);
    expect(parseDurationMs('2m')).toBe(120_000);
    expect(parseDurationMs('1h')).toBe(3_600_000);
    expect(parseDurationMs('40')).toBe(40);
    expect(parseDurationMs('-1s')).toBeUndefined();
    expect(parseDurationMs('1d')).toBeUndefined();
  });
});

describe('waterfall layout', () => {
  const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
  const span = (id: string, parent: string, startMs: number, durationMs: number, depth: number, service = 'shop') => ({
    time: at(startMs),
    span: { spanId: id, parentSpanId: parent, name: id, serviceName: service, startTime: at(startMs), durationMs, depth },
  });
  // GetTrace's order: root, its log, child b (starts before the root), grandchild, child a; a log of no stored span.
  const items: TimelineItem[] = [
    span('root', '', 100, 300, 0),
    { time: at(150), log: { body: 'started', spanId: 'root', severityNumber: 9 } },
    span('b', 'root', 0, 200, 1, 'payments'),
    span('g', 'b', 50, 100, 2, 'payments'),
    { time: at(60), event: { eventType: 'x', spanId: 'g' } },
    span('a', 'root', 200, 400, 1),
    { time: at(500), log: { body: 'stray', spanId: 'ffff' } },
  ];

  it('places bars by start and duration over the whole trace, notes one level under their span', () => {
    const l = layoutTrace(items);
    expect(l.durationUs).toBe(600_000);
    expect(l.services).toEqual(['payments', 'shop']);
    expect(l.rows.map((r) => [r.kind, r.depth, Math.round(r.left * 100) / 100])).toEqual([
      ['span', 0, 16.67],
      ['log', 1, 25],
      ['span', 1, 0],
      ['span', 2, 8.33],
      ['event', 3, 10],
      ['span', 1, 33.33],
      ['log', 0, 83.33],
    ]);
    const widths = l.rows.flatMap((r) => (r.kind === 'span' ? [Math.round(r.width * 100) / 100] : []));
    expect(widths).toEqual([50, 33.33, 16.67, 66.67]);
    expect(l.rows[0]?.offsetUs).toBe(100_000);
  });

  it('lays out an empty timeline, and a trace of notes alone', () => {
    expect(layoutTrace([])).toEqual({ rows: [], startUs: 0, durationUs: 0, services: [] });
    const l = layoutTrace([{ time: at(0), log: { body: 'a' } }, { time: at(10), log: { body: 'b' } }]);
    expect(l.rows.map((r) => r.left)).toEqual([0, 100]);
  });

  it('reads nanosecond timestamps to the microsecond, and formats durations', () => {
    expect(timeUs('2026-01-01T00:00:00.123456789Z') - timeUs('2026-01-01T00:00:00Z')).toBe(123_456);
    expect(timeUs('2026-01-01T01:00:00.5+01:00')).toBe(Date.UTC(2026, 0, 1) * 1000 + 500_000);
    expect(timeUs('yesterday')).toBeNaN();
    expect([0, 0.25, 3.456, 42.25, 250.4, 1250, 125_000].map(formatMs)).toEqual(['0ms', '250µs', '3.46ms', '42.3ms', '250ms', '1.25s', '2m 5s']);
    expect(serviceColor(0)).not.toBe(serviceColor(1));
    expect(serviceColor(-1)).toMatch(/^#/);
  });
});
