// The benchmark's request: one ExportTraceServiceRequest of SPANS spans with 10 string attributes each.
import { create, toBinary } from '@bufbuild/protobuf';
import { randomBytes } from 'node:crypto';
import { ExportTraceServiceRequestSchema } from '../dist/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';

/** Encodes the request (ids random, timestamps now). */
export function traceRequestBytes(spans = 100) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const req = create(ExportTraceServiceRequestSchema, {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { value: { case: 'stringValue', value: 'bench-service' } } }, { key: 'host.name', value: { value: { case: 'stringValue', value: 'bench-host' } } }] },
        scopeSpans: [
          {
            scope: { name: 'bench', version: '1.0.0' },
            spans: Array.from({ length: spans }, (_, i) => ({
              traceId: randomBytes(16),
              spanId: randomBytes(8),
              parentSpanId: randomBytes(8),
              name: `GET /api/v1/resource/${i % 20}`,
              kind: 2,
              startTimeUnixNano: now + BigInt(i * 1000),
              endTimeUnixNano: now + BigInt(i * 1000 + 2_500_000),
              attributes: Array.from({ length: 10 }, (_, a) => ({ key: `app.attribute.${a}`, value: { value: { case: 'stringValue', value: `value-${a}-${i % 50}-xxxxxxxx` } } })),
              status: { code: i % 25 === 0 ? 2 : 0 },
            })),
          },
        ],
      },
    ],
  });
  return Buffer.from(toBinary(ExportTraceServiceRequestSchema, req));
}
