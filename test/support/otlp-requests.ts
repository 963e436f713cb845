/** OTLP export requests built with the generated code (for protocol edge cases the SDKs never send). */
import { create, toBinary } from '@bufbuild/protobuf';
import { ExportTraceServiceRequestSchema, type ExportTraceServiceRequest } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { randomBytes } from 'node:crypto';

/** A request with `spans` spans of `service`, each with 10 string attributes; ids random unless given. */
export function traceRequest(service: string, spans: number, mutate?: (i: number, span: { traceId: Uint8Array; spanId: Uint8Array }) => void): ExportTraceServiceRequest {
  const now = BigInt(Date.now()) * 1_000_000n;
  return create(ExportTraceServiceRequestSchema, {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { value: { case: 'stringValue', value: service } } }] },
        scopeSpans: [
          {
            scope: { name: 'raw', version: '1' },
            spans: Array.from({ length: spans }, (_, i) => {
              const span = { traceId: new Uint8Array(randomBytes(16)), spanId: new Uint8Array(randomBytes(8)) };
              mutate?.(i, span);
              return {
                ...span,
                name: `op-${i % 10}`,
                kind: 2,
                startTimeUnixNano: now + BigInt(i),
                endTimeUnixNano: now + BigInt(i) + 1_000_000n,
                attributes: Array.from({ length: 10 }, (_, a) => ({ key: `attr.${a}`, value: { value: { case: 'stringValue' as const, value: `value-${a}-${i}` } } })),
              };
            }),
          },
        ],
      },
    ],
  });
}

/** The protobuf encoding of a trace request. */
export function encodeTraces(req: ExportTraceServiceRequest): Buffer {
  return Buffer.from(toBinary(ExportTraceServiceRequestSchema, req));
}
