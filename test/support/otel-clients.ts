/** The real OpenTelemetry JS SDK and OTLP exporters from npm, pointed at a test agent. */
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as LogsGrpc } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as LogsHttpJson } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as LogsHttpProto } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricsHttpJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as MetricsHttpProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as TracesGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as TracesHttpJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as TracesHttpProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';

export { SeverityNumber };

export type Transport = 'grpc' | 'http/protobuf' | 'http/json';
export const TRANSPORTS: Transport[] = ['grpc', 'http/protobuf', 'http/json'];

/** Exporters for one transport, at the agent's gRPC address or OTLP/HTTP base URL. */
export function exporters(transport: Transport, grpcAddress: string, httpUrl: string) {
  switch (transport) {
    case 'grpc': {
      const url = `http://${grpcAddress}`;
      return { traces: new TracesGrpc({ url }), logs: new LogsGrpc({ url }), metrics: new MetricsGrpc({ url }) };
    }
    case 'http/protobuf':
      return {
        traces: new TracesHttpProto({ url: `${httpUrl}/v1/traces` }),
        logs: new LogsHttpProto({ url: `${httpUrl}/v1/logs` }),
        metrics: new MetricsHttpProto({ url: `${httpUrl}/v1/metrics` }),
      };
    case 'http/json':
      return {
        traces: new TracesHttpJson({ url: `${httpUrl}/v1/traces` }),
        logs: new LogsHttpJson({ url: `${httpUrl}/v1/logs` }),
        metrics: new MetricsHttpJson({ url: `${httpUrl}/v1/metrics` }),
      };
  }
}

/** A gzip-compressing trace exporter for one transport (gRPC message compression, or HTTP Content-Encoding). */
export function gzipTraceExporter(transport: 'grpc' | 'http/protobuf', grpcAddress: string, httpUrl: string) {
  return transport === 'grpc'
    ? new TracesGrpc({ url: `http://${grpcAddress}`, compression: CompressionAlgorithm.GZIP })
    : new TracesHttpProto({ url: `${httpUrl}/v1/traces`, compression: CompressionAlgorithm.GZIP });
}

/** A resource naming the service (and the transport, so tests can tell their rows apart). */
export function testResource(service: string) {
  return resourceFromAttributes({ 'service.name': service, 'deployment.environment.name': 'test', 'host.name': 'box' });
}

/**
 * Records spans of `service` with the real SDK (`fill` starts and ends them) and exports them over
 * OTLP/HTTP protobuf to `httpUrl` with `token`; resolves once they are sent.
 */
export async function sendTraces(httpUrl: string, token: string, service: string, fill: (tracer: Tracer) => void): Promise<void> {
  const exporter = new TracesHttpProto({ url: `${httpUrl}/v1/traces`, headers: { authorization: `Bearer ${token}` } });
  const provider = new BasicTracerProvider({ resource: testResource(service), spanProcessors: [new BatchSpanProcessor(exporter)] });
  fill(provider.getTracer('heimdall-test'));
  await provider.forceFlush();
  await provider.shutdown();
}

/**
 * Emits log records of `service` with the real SDK (`fill` emits them) and exports them over
 * OTLP/HTTP protobuf to `httpUrl` with `token`; resolves once they are sent.
 */
export async function sendLogs(httpUrl: string, token: string, service: string, fill: (logger: Logger) => void): Promise<void> {
  const exporter = new LogsHttpProto({ url: `${httpUrl}/v1/logs`, headers: { authorization: `Bearer ${token}` } });
  const provider = new LoggerProvider({ resource: testResource(service), processors: [new BatchLogRecordProcessor({ exporter })] });
  fill(provider.getLogger('heimdall-test'));
  await provider.forceFlush();
  await provider.shutdown();
}
