import type { IncomingMessage, ServerResponse } from 'node:http';
import { create, fromBinary, fromJson, toBinary, toJson, type DescMessage, type JsonValue, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
import { ExportLogsServiceRequestSchema, ExportLogsServiceResponseSchema, LogsService } from '../../gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import { ExportMetricsServiceRequestSchema, ExportMetricsServiceResponseSchema, MetricsService } from '../../gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import { ExportTraceServiceRequestSchema, ExportTraceServiceResponseSchema, TraceService } from '../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { GrpcError, unavailable } from '../../server/errors.js';
import type { GrpcServer } from '../../server/grpc.js';
import type { CallContext } from '../../server/grpc-service.js';
import { BodyTooLarge, type HttpServer } from '../../server/http.js';
import type { Logger } from '../../telemetry/logger.js';
import { RequestTooLarge, RetryableError } from '../pipeline/errors.js';
import type { Admission, Pipeline } from '../pipeline/pipeline.js';
import type { TableRows } from '../pipeline/batcher.js';
import type { RedMetrics, SpanSummary } from '../red-metrics.js';
import { discardBody, readAdmittedBody, UnreadableBody } from './body.js';
import { DECODED_PER_BYTE } from './decoded-size.js';
import { hexIdsToBase64 } from './json.js';
import { logsToRows } from './logs.js';
import { metricsToRows } from './metrics.js';
import { rejectionMessage, type Conversion } from './result.js';
import { TRACES_TABLE, tracesToRows } from './traces.js';
import { encodeTraceRequest, type TraceProcessors } from './traces-wire.js';
import { mergeResourceAttributes, TENANT_ATTRIBUTE } from '../processors/enrichment.js';
import type { Principal } from '../../auth/auth.js';

/** Options for addOtlpReceivers. */
export interface OtlpReceiverOptions {
  /** Where converted rows go. */
  pipeline: Pipeline;
  /** The agent's gRPC server, which gets the three OTLP services. */
  grpc: GrpcServer;
  /** The OTLP/HTTP listener, which gets POST /v1/{traces,metrics,logs}. */
  http: HttpServer;
  /** Largest OTLP/HTTP body, checked on the wire and while it is decompressed. */
  maxBodyBytes: number;
  /** Browser origins allowed by CORS; empty: no CORS headers. */
  corsAllowedOrigins: readonly string[];
  /** Span-derived RED metrics, when enabled. */
  red: RedMetrics | undefined;
  /** Registry for the receiver counters. */
  metrics: Registry;
  /** The agent's logger; the receivers log as component `otlp`. */
  logger: Logger;
}

interface Signal<Req extends DescMessage, Res extends DescMessage> {
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

const traces: Signal<typeof ExportTraceServiceRequestSchema, typeof ExportTraceServiceResponseSchema> = {
  name: 'traces',
  path: '/v1/traces',
  item: 'spans',
  request: ExportTraceServiceRequestSchema,
  response: ExportTraceServiceResponseSchema,
  convert: tracesToRows,
  fast: (bytes, processors) => {
    const e = encodeTraceRequest(bytes, processors);
    return e && { parts: [{ table: TRACES_TABLE, data: e.data, rows: e.accepted }], accepted: e.accepted, rejected: e.rejected, reasons: e.reasons, spans: e.spans };
  },
  reply: (rejected, errorMessage) => (rejected > 0 ? { partialSuccess: { rejectedSpans: BigInt(rejected), errorMessage } } : {}),
};
const logs: Signal<typeof ExportLogsServiceRequestSchema, typeof ExportLogsServiceResponseSchema> = {
  name: 'logs',
  path: '/v1/logs',
  item: 'log_records',
  request: ExportLogsServiceRequestSchema,
  response: ExportLogsServiceResponseSchema,
  convert: logsToRows,
  reply: (rejected, errorMessage) => (rejected > 0 ? { partialSuccess: { rejectedLogRecords: BigInt(rejected), errorMessage } } : {}),
};
const metrics: Signal<typeof ExportMetricsServiceRequestSchema, typeof ExportMetricsServiceResponseSchema> = {
  name: 'metrics',
  path: '/v1/metrics',
  item: 'metric_points',
  request: ExportMetricsServiceRequestSchema,
  response: ExportMetricsServiceResponseSchema,
  convert: metricsToRows,
  reply: (rejected, errorMessage) => (rejected > 0 ? { partialSuccess: { rejectedDataPoints: BigInt(rejected), errorMessage } } : {}),
};

/** A request converted and encoded, ready for the pipeline. */
interface Prepared {
  /** Encoded rows per table. */
  parts: readonly TableRows[];
  accepted: number;
  rejected: number;
  reasons: string[];
  /** Stored spans, for the RED metrics. */
  spans: readonly SpanSummary[];
}

/** A request whose bytes are not a valid message of its type. */
class MalformedRequest extends Error {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {
    super(`malformed ${typeName}: ${reason}`);
  }
}

/** An OTLP/HTTP request that cannot be served, with its HTTP status. */
class HttpFailure extends Error {
  readonly status: number;
  readonly grpcCode: number;
  readonly retryAfterMs: number | undefined;
  constructor(httpStatus: number, grpcCode: number, message: string, retryAfterMs?: number) {
    super(message);
    this.status = httpStatus;
    this.grpcCode = grpcCode;
    this.retryAfterMs = retryAfterMs;
  }
}

const PER_BYTE = DECODED_PER_BYTE;

/**
 * Adds the OTLP receivers: `opentelemetry.proto.collector.{trace,metrics,logs}.v1.*Service/Export`
 * on the gRPC server and `POST /v1/{traces,metrics,logs}` (protobuf or JSON, gzip or deflate) on the
 * OTLP/HTTP listener. Invalid items are reported in partial_success with their exact count and the
 * rest is stored. Each request is admitted against the memory limit before it is read (HTTP) or
 * decoded (gRPC). Refusals that pass (memory, queue, storage) are retryable: UNAVAILABLE with
 * RetryInfo, or HTTP 503 with Retry-After; a request that can never fit (alone over the memory
 * limit or the durable queue) is INVALID_ARGUMENT or HTTP 413, which exporters do not retry.
 */
export function addOtlpReceivers(options: OtlpReceiverOptions): void {
  const logger = options.logger.child({ component: 'otlp' });
  // The Collector's vocabulary (otelcol_receiver_accepted_spans, ...) with the heimdall_ prefix.
  const counters = (kind: string, help: string) =>
    Object.fromEntries(
      (['spans', 'log_records', 'metric_points'] as const).map((item) => [
        item,
        new Counter({ name: `heimdall_receiver_${kind}_${item}_total`, help: help.replace('Items', item.replace('_', ' ')), labelNames: ['transport'] as const, registers: [options.metrics] }),
      ]),
    ) as Record<'spans' | 'log_records' | 'metric_points', Counter<'transport'>>;
  const accepted = counters('accepted', 'Items accepted (stored, or queued with ack: queued), by transport.');
  const refused = counters('refused', 'Items refused with a retryable error (memory, queue full, storage unavailable), by transport.');
  const rejected = counters('rejected', 'Items rejected as invalid and reported in partial_success, by transport.');
  const failed = counters('failed', 'Items lost to an internal error, by transport.');

  const decode = <Req extends DescMessage>(schema: Req, bytes: Buffer): MessageShape<Req> => {
    try {
      return fromBinary(schema, bytes);
    } catch (err) {
      throw new MalformedRequest(schema.typeName, (err as Error).message);
    }
  };

  /**
   * Converts and encodes a request given as wire bytes (hot path first) or as a decoded message.
   * Data written with a tenant-bound token carries the token's tenant as a resource attribute.
   */
  const prepare = <Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>, request: Buffer | MessageShape<Req>, tenant: string | undefined, admission: Admission): Prepared => {
    const overrides = tenant === undefined ? undefined : { [TENANT_ATTRIBUTE]: tenant };
    if (Buffer.isBuffer(request) && signal.fast) {
      const fast = signal.fast(request, { ...options.pipeline.processors, resourceOverrides: overrides });
      if (fast) return fast;
      // Left to the generic decoder, which takes more memory than was admitted for the hot path.
      admission.raise(PER_BYTE.decoded);
    }
    const conversion = signal.convert(Buffer.isBuffer(request) ? decode(signal.request, request) : request);
    if (overrides) mergeResourceAttributes(conversion, overrides, 'override');
    const parts = options.pipeline.process(conversion);
    // Span metrics are taken after the processors: their labels show span and service names as stored (redacted).
    const spans: SpanSummary[] = (signal.name === 'traces' ? (conversion.tables.get(TRACES_TABLE) ?? []) : []).map((row) => ({
      service: row.ServiceName as string,
      name: row.SpanName as string,
      kind: row.SpanKind as string,
      status: row.StatusCode as string,
      durationSeconds: Number(row.Duration) / 1e9,
    }));
    return { parts, accepted: conversion.accepted, rejected: conversion.rejected, reasons: conversion.reasons, spans };
  };

  /**
   * Converts and submits one admitted request; returns the reply (with partial_success). Requests
   * refused before they were decoded are counted as requests by the memory limiter, not as items.
   */
  const ingest = async <Req extends DescMessage, Res extends DescMessage>(
    signal: Signal<Req, Res>,
    request: Buffer | MessageShape<Req>,
    transport: 'grpc' | 'http',
    admission: Admission,
    principal: Principal | undefined,
  ) => {
    const labels = { transport };
    const prepared = prepare(signal, request, principal?.tenant, admission);
    if (prepared.rejected > 0) rejected[signal.item].inc(labels, prepared.rejected);
    // Span metrics are counted only once the spans are accepted, so a refused and retried export counts once.
    try {
      await options.pipeline.submit(prepared.parts);
      options.red?.observe(prepared.spans);
      accepted[signal.item].inc(labels, prepared.accepted);
    } catch (err) {
      if (err instanceof RetryableError) refused[signal.item].inc(labels, prepared.accepted);
      else failed[signal.item].inc(labels, prepared.accepted);
      throw err;
    }
    return signal.reply(prepared.rejected, rejectionMessage(prepared, signal.item.replace('_', ' ')));
  };

  // Requests arrive as wire bytes (grpc-js bounds them by server.grpc.max_recv_msg_size as it reads
  // them): admitted before they are decoded; the hot path (traces) reads them directly.
  const grpcExport = <Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>) => ({
    export: {
      async raw(bytes: Buffer, ctx: CallContext) {
        let admission: Admission | undefined;
        try {
          admission = options.pipeline.admit(bytes.length, signal.fast ? PER_BYTE.fast : PER_BYTE.decoded);
          return await ingest(signal, bytes, 'grpc', admission, ctx.principal);
        } catch (err) {
          if (err instanceof RetryableError) throw unavailable(err.message, err.retryAfterMs);
          if (err instanceof MalformedRequest || err instanceof RequestTooLarge) throw new GrpcError(status.INVALID_ARGUMENT, err.message);
          throw err;
        } finally {
          admission?.release();
        }
      },
    },
  });
  options.grpc.addService(TraceService, grpcExport(traces), 'ingest');
  options.grpc.addService(LogsService, grpcExport(logs), 'ingest');
  options.grpc.addService(MetricsService, grpcExport(metrics), 'ingest');

  const cors = (req: IncomingMessage, res: ServerResponse): void => {
    const origin = req.headers.origin;
    if (origin && options.corsAllowedOrigins.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
    }
  };

  const httpExport = <Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>) => {
    options.http.route('POST', signal.path, async (req, res, { principal }) => {
      cors(req, res);
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      const json = contentType === 'application/json';
      const send = (code: number, body: Uint8Array | string, headers: Record<string, string> = {}) => {
        res.writeHead(code, { 'content-type': json ? 'application/json' : 'application/x-protobuf', 'content-length': Buffer.byteLength(body), ...headers });
        res.end(body);
      };
      const sendStatus = (f: HttpFailure) => {
        const st = create(StatusSchema, { code: f.grpcCode, message: f.message });
        const headers: Record<string, string> = f.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(f.retryAfterMs / 1000)) } : {};
        send(f.status, json ? JSON.stringify(toJson(StatusSchema, st)) : toBinary(StatusSchema, st), headers);
      };
      let admission: Admission | undefined;
      try {
        if (!json && contentType !== 'application/x-protobuf') {
          res.writeHead(415, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`unsupported Content-Type ${JSON.stringify(contentType ?? '')}: use application/x-protobuf or application/json`);
          req.resume();
          return;
        }
        // Admitted before the body is read, and as it grows (decompressed): no byte is held unadmitted.
        admission = options.pipeline.admit(0, json ? PER_BYTE.json : signal.fast ? PER_BYTE.fast : PER_BYTE.decoded);
        const body = await readAdmittedBody(req, { maxBytes: options.maxBodyBytes, admission });
        let request: Buffer | MessageShape<Req> = body;
        if (json) {
          try {
            request = fromJson(signal.request, hexIdsToBase64(JSON.parse(body.toString('utf8'))) as JsonValue, { ignoreUnknownFields: true });
          } catch (err) {
            throw new HttpFailure(400, status.INVALID_ARGUMENT, `malformed JSON ${signal.request.typeName}: ${(err as Error).message}`);
          }
        }
        const reply = create(signal.response, await ingest(signal, request, 'http', admission, principal));
        send(200, json ? JSON.stringify(toJson(signal.response, reply)) : toBinary(signal.response, reply));
      } catch (err) {
        // A body refused before its end is not kept. A client must read a 413 (it is not to retry):
        // the rest of a body within the size limit is read and dropped. Otherwise the connection
        // closes after the answer: a client that sees a reset rather than the 503 retries all the same.
        if (!req.complete) {
          if (err instanceof RequestTooLarge) discardBody(req, options.maxBodyBytes);
          else res.setHeader('connection', 'close');
        }
        if (err instanceof MalformedRequest) sendStatus(new HttpFailure(400, status.INVALID_ARGUMENT, `malformed protobuf ${err.typeName}: ${err.reason}`));
        else if (err instanceof HttpFailure) sendStatus(err);
        else if (err instanceof UnreadableBody) sendStatus(new HttpFailure(400, status.INVALID_ARGUMENT, err.message));
        else if (err instanceof BodyTooLarge || err instanceof RequestTooLarge) sendStatus(new HttpFailure(413, status.INVALID_ARGUMENT, err.message));
        else if (err instanceof RetryableError) sendStatus(new HttpFailure(503, status.UNAVAILABLE, err.message, err.retryAfterMs));
        else {
          logger.error({ err, path: signal.path }, 'OTLP/HTTP export failed');
          sendStatus(new HttpFailure(500, status.INTERNAL, 'internal error'));
        }
      } finally {
        admission?.release();
      }
    }, 'ingest');
    if (options.corsAllowedOrigins.length > 0) {
      options.http.route('OPTIONS', signal.path, (req, res) => {
        cors(req, res);
        res.writeHead(204, {
          'access-control-allow-methods': 'POST, OPTIONS',
          'access-control-allow-headers': 'content-type, content-encoding, x-correlation-id, authorization',
          'access-control-max-age': '600',
        });
        res.end();
      });
    }
  };
  httpExport(traces);
  httpExport(logs);
  httpExport(metrics);
}
