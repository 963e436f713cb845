import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { formatTimeline } from '../../../src/cli/timeline.js';
import { Severity } from '../../../src/gen/heimdall/v1/events_pb.js';
import { TimelineItemSchema, type TimelineItem } from '../../../src/gen/heimdall/v1/query_pb.js';

const at = (ms: number) => ({ seconds: BigInt(1_700_000_000 + Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });

describe('formatTimeline', () => {
  it('shows each span with kind, duration, status and message, and its first 8 attributes by key, values cut and escaped', () => {
    const attributes = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`attr.${i}`, `v${i}`]));
    attributes['attr.0'] = 'x'.repeat(100);
    attributes['attr.1'] = 'line one\nline two';
    const items: TimelineItem[] = [
      create(TimelineItemSchema, { time: at(0), item: { case: 'span', value: { spanId: 'a', serviceName: 'front', name: 'GET /cart', kind: 'Server', durationMs: 120, statusCode: 'Error', statusMessage: 'payment declined', attributes, depth: 0 } } }),
      create(TimelineItemSchema, { time: at(15), item: { case: 'span', value: { spanId: 'b', serviceName: 'back', name: 'SELECT', kind: 'Client', durationMs: 20.25, statusCode: 'Ok', attributes: { 'db.system': 'clickhouse' }, depth: 1 } } }),
      create(TimelineItemSchema, { time: at(20), item: { case: 'log', value: { spanId: 'b', severityText: 'WARN', body: 'slow query' } } }),
      create(TimelineItemSchema, { time: at(30), item: { case: 'event', value: { spanId: 'b', severity: Severity.WARNING, source: 'back', eventType: 'cache.miss', message: 'cold' } } }),
      create(TimelineItemSchema, { time: at(1200), item: { case: 'span', value: { spanId: 'c', serviceName: 'front', name: 'render', kind: 'Internal', durationMs: 1, statusCode: 'Unset', depth: 1 } } }),
    ];
    expect(formatTimeline(items)).toEqual([
      '+     0 ms  front GET /cart (server, 120.0 ms, error: payment declined)',
      `                attr.0=${'x'.repeat(79)}…`,
      '                attr.1=line one\\nline two',
      '                attr.2=v2',
      '                attr.3=v3',
      '                attr.4=v4',
      '                attr.5=v5',
      '                attr.6=v6',
      '                attr.7=v7',
      '                … 2 more attributes (--json shows all)',
      '+    15 ms    back SELECT (client, 20.3 ms, ok)',
      '                  db.system=clickhouse',
      '+    20 ms      · log WARN: slow query',
      '+    30 ms      ◆ event warning back/cache.miss: cold',
      '+  1200 ms    front render (internal, 1.0 ms, unset)',
    ]);
  });

  it('prints items in the order given (tree order), offsets from the earliest, and marks orphans with the parent they name', () => {
    const items: TimelineItem[] = [
      create(TimelineItemSchema, { time: at(10), item: { case: 'span', value: { spanId: 'p', serviceName: 'front', name: 'parent', kind: 'Server', durationMs: 50, statusCode: 'Unset', depth: 0 } } }),
      create(TimelineItemSchema, { time: at(4), item: { case: 'span', value: { spanId: 'c', parentSpanId: 'p', serviceName: 'back', name: 'skewed child', kind: 'Server', durationMs: 5, statusCode: 'Ok', depth: 1 } } }),
      create(TimelineItemSchema, { time: at(30), item: { case: 'span', value: { spanId: 'o', parentSpanId: '00000000000000ff', serviceName: 'lost', name: 'orphan', kind: 'Internal', durationMs: 1, statusCode: 'Unset', depth: 0, orphan: true } } }),
    ];
    expect(formatTimeline(items)).toEqual([
      '+     6 ms  front parent (server, 50.0 ms, unset)',
      '+     0 ms    back skewed child (server, 5.0 ms, ok)',
      '+    26 ms  lost orphan (internal, 1.0 ms, unset) [orphan: parent 00000000000000ff not stored]',
    ]);
  });
});
