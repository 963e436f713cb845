import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ExportMetricsServiceRequestSchema } from '../../../src/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import { ExportTraceServiceRequestSchema } from '../../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { countProtoElements } from '../../../src/ingest/otlp/element-count.js';
import { encodeTraces, traceRequest } from '../../support/otlp-requests.js';

describe('countProtoElements', () => {
  // The trace hot path relies on this: a body no longer than ingest.max_elements is not counted.
  it('never counts more elements than the body has bytes: empty fields, packed varints and fixed values, nested messages', () => {
    const empty = Buffer.alloc(2_000);
    for (let i = 0; i < empty.length; i += 2) empty[i] = 0x0a;
    const histogram = create(ExportMetricsServiceRequestSchema, {
      resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'h', data: { case: 'histogram', value: { dataPoints: [{ bucketCounts: new Array(500).fill(1n), explicitBounds: new Array(499).fill(0.5), count: 500n }] } } }] }] }],
    });
    const cases = [
      { schema: ExportTraceServiceRequestSchema, body: encodeTraces(traceRequest('svc', 200)) },
      { schema: ExportTraceServiceRequestSchema, body: empty },
      { schema: ExportMetricsServiceRequestSchema, body: Buffer.from(toBinary(ExportMetricsServiceRequestSchema, histogram)) },
    ];
    for (const { schema, body } of cases) {
      const { elements } = countProtoElements(schema, body, Number.MAX_SAFE_INTEGER, 100);
      expect(elements).toBeGreaterThan(body.length / 20);
      expect(elements).toBeLessThanOrEqual(body.length);
    }
    // 1,000 empty resource spans: one element per two bytes.
    expect(countProtoElements(ExportTraceServiceRequestSchema, empty, Number.MAX_SAFE_INTEGER, 100).elements).toBe(1_000);
  });
});
