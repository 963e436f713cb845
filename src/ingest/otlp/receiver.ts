import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DescMessage } from '@bufbuild/protobuf';
import type { Registry } from 'prom-client';
import { LogsService } from '../../gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import { MetricsService } from '../../gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import { TraceService } from '../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import type { Config } from '../../config/schema.js';
import { AgentError } from '../../errors/agent-error.js';
import type { GrpcServer } from '../../server/grpc.js';
import type { ServiceOptions } from '../../server/service-registry.js';
import type { CallContext } from '../../server/grpc-service.js';
import type { HttpServer } from '../../server/http.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Admission } from '../pipeline/admission.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { RedMetrics } from '../red-metrics.js';
import { DECODED_PER_BYTE } from './decoded-size.js';
import { httpExport } from './http-export.js';
import { createOtlpIngest, MalformedRequest, type OtlpIngest } from './otlp-ingest.js';
import { logs, metrics, traces, type Signal } from './signals.js';

/** Options for addOtlpReceivers. */
export interface OtlpReceiverOptions {
  /** Where converted rows go. */
  pipeline: Pipeline;
  /** The agent's gRPC server, which gets the three OTLP services. */
  grpc: GrpcServer;
  /** The OTLP/HTTP listener, which gets POST /v1/{traces,metrics,logs}. */
  http: HttpServer;
  /** The OTLP/HTTP listener's section (`server.otlp_http`): max_body_size (checked on the wire and while decompressed), cors_allowed_origins (empty: no CORS headers). */
  config: Pick<Config['server']['otlp_http'], 'max_body_size' | 'cors_allowed_origins'>;
  /** The `ingest` section: max_elements, the most values one request may decode into. */
  ingest: Pick<Config['ingest'], 'max_elements'>;
  /** Span-derived RED metrics, when enabled. */
  red: RedMetrics | undefined;
  /** Registry for the receiver counters. */
  metrics: Registry;
  /** The agent's logger; the receivers log as component `otlp`. */
  logger: Logger;
}

/**
 * The gRPC Export handler of one signal. The message was admitted before grpc-js read it (the
 * service's `reserve`, server.grpc.max_recv_msg_size of memory); here that reservation is handed
 * over to the request's own admission, which is settled to its decoded size once counted.
 */
function grpcExport<Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>, ingest: OtlpIngest, pipeline: Pipeline) {
  return {
    export: {
      async raw(bytes: Buffer, ctx: CallContext) {
        let admission: Admission | undefined;
        try {
          ctx.releaseMessage(bytes);
          admission = pipeline.admit(bytes.length, signal.fast ? DECODED_PER_BYTE.fast : DECODED_PER_BYTE.decoded);
          return await ingest.ingest(signal, bytes, 'protobuf', 'grpc', admission, ctx.principal);
        } catch (err) {
          if (err instanceof MalformedRequest) throw new AgentError('invalid_argument', `malformed ${err.typeName}: ${err.reason}`);
          throw err;
        } finally {
          admission?.release();
        }
      },
    },
  };
}

/**
 * Adds the OTLP receivers: `opentelemetry.proto.collector.{trace,metrics,logs}.v1.*Service/Export`
 * on the gRPC server and `POST /v1/{traces,metrics,logs}` (protobuf or JSON, gzip or deflate) on the
 * OTLP/HTTP listener. Invalid items are reported in partial_success with their exact count and the
 * rest is stored. Each request is admitted against the memory limit before it is read, and again
 * by its decoded size once its elements are counted, before it is decoded. Refusals that pass
 * (memory, queue, storage) are retryable: UNAVAILABLE with RetryInfo, or HTTP 503 with
 * Retry-After; a request that can never fit (alone over the memory limit or the durable queue, more
 * than ingest.max_elements values) is INVALID_ARGUMENT or HTTP 413, which exporters do not retry.
 */
export function addOtlpReceivers(options: OtlpReceiverOptions): void {
  const logger = options.logger.child({ component: 'otlp' });
  const ingest = createOtlpIngest({ pipeline: options.pipeline, red: options.red, maxElements: options.ingest.max_elements, metrics: options.metrics });
  // Telemetry ingestion is not traced: an agent tracing itself into itself would loop.
  const admitted: ServiceOptions = { reserve: (bytes, wait) => options.pipeline.reserveUnread(bytes, wait), traced: false };
  options.grpc.addService(TraceService, grpcExport(traces, ingest, options.pipeline), 'ingest', admitted);
  options.grpc.addService(LogsService, grpcExport(logs, ingest, options.pipeline), 'ingest', admitted);
  options.grpc.addService(MetricsService, grpcExport(metrics, ingest, options.pipeline), 'ingest', admitted);

  const cors = (req: IncomingMessage, res: ServerResponse): void => {
    const origin = req.headers.origin;
    if (origin && options.config.cors_allowed_origins.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
    }
  };
  for (const signal of [traces, logs, metrics] as Signal[]) {
    options.http.route('POST', signal.path, httpExport(signal, { ingest, pipeline: options.pipeline, maxBodyBytes: options.config.max_body_size, cors, logger }), { scope: 'ingest', traced: false });
    if (options.config.cors_allowed_origins.length === 0) continue;
    options.http.route('OPTIONS', signal.path, (req, res) => {
      cors(req, res);
      res.writeHead(204, {
        'access-control-allow-methods': 'POST, OPTIONS',
        'access-control-allow-headers': 'content-type, content-encoding, x-correlation-id, authorization',
        'access-control-max-age': '600',
      });
      res.end();
    }, { traced: false });
  }
}
