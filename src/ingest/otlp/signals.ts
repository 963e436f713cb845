import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { ExportLogsServiceRequestSchema, ExportLogsServiceResponseSchema } from '../../gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import { ExportMetricsServiceRequestSchema, ExportMetricsServiceResponseSchema } from '../../gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import { ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema } from '../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { TRACES } from '../../storage/tables.js';
import type { TableRows } from '../pipeline/formats.js';
import type { SpanSummaries } from '../red-metrics.js';
import { logsToRows } from './logs.js';
import { metricsToRows } from './metrics.js';
import type { Conversion } from './result.js';
import { tracesToRows } from './traces.js';
import { encodeTraceRequest, type TraceProcessors } from './traces-wire.js';

/** A request converted and encoded, ready for the pipeline. */
export interface Prepared {
  /** Encoded rows per table. */
  parts: readonly TableRows[];
  accepted: number;
  rejected: number;
  reasons: string[];
  /** Stored spans, for the RED metrics. */
  spans: SpanSummaries;
}

/** One OTLP signal: its messages, paths and how its requests become rows. */
export interface Signal<Req extends DescMessage = DescMessage, Res extends DescMessage = DescMessage> {
  name: 'traces' | 'logs' | 'metrics';
  path: string;
  /** What one item is called in metric names and messages. */
  item: 'spans' | 'log_records' | 'metric_points';
  request: Req;
  response: Res;
  convert(req: MessageShape<Req>): Conversion;
  /** A hot path from wire bytes to encoded rows; undefined (or its undefined answer): decode and convert. */
  fast?: (bytes: Buffer, processors: TraceProcessors) => Prepared | undefined;
  reply(rejected: number, message: string): MessageInitShape<Res>;
}

export const traces: Signal<typeof ExportTraceServiceRequestSchema, typeof ExportTraceServiceResponseSchema> = {
  name: 'traces',
  path: '/v1/traces',
  item: 'spans',
  request: ExportTraceServiceRequestSchema,
  response: ExportTraceServiceResponseSchema,
  convert: tracesToRows,
  fast: (bytes, processors) => {
    const e = encodeTraceRequest(bytes, processors);
    return e && { parts: [{ table: TRACES.name, data: e.data, rows: e.accepted }], accepted: e.accepted, rejected: e.rejected, reasons: e.reasons, spans: e.spans };
  },
  reply: (rejected, errorMessage) => (rejected > 0 ? { partialSuccess: { rejectedSpans: BigInt(rejected), errorMessage } } : {}),
};

export const logs: Signal<typeof ExportLogsServiceRequestSchema, typeof ExportLogsServiceResponseSchema> = {
  name: 'logs',
  path: '/v1/logs',
  item: 'log_records',
  request: ExportLogsServiceRequestSchema,
  response: ExportLogsServiceResponseSchema,
  convert: logsToRows,
  reply: (rejected, errorMessage) => (rejected > 0 ? { partialSuccess: { rejectedLogRecords: BigInt(rejected), errorMessage } } : {}),
};

export const metrics: Signal<typeof ExportMetricsServiceRequestSchema, typeof ExportMetricsServiceResponseSchema> = {
  name: 'metrics',
  path: '/v1/metrics',
  item: 'metric_points',
  request: ExportMetricsServiceRequestSchema,
  response: ExportMetricsServiceResponseSchema,
  convert: metricsToRows,
  reply: (rejected, errorMessage) => (rejected > 0 ? { partialSuccess: { rejectedDataPoints: BigInt(rejected), errorMessage } } : {}),
};
