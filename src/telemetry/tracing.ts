import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { NodeSDK, tracing } from '@opentelemetry/sdk-node';
import type { Logger } from './logger.js';

/** Options for createSelfTracing. */
export interface SelfTracingOptions {
  /** OTLP/gRPC endpoint receiving the agent's own spans. */
  endpoint: string;
  /** Fraction of root spans sampled, 0 to 1. */
  sampleRatio: number;
  version: string;
  logger: Logger;
}

/** The agent's own tracing: spans for its gRPC calls and HTTP requests, exported over OTLP. */
export interface SelfTracing {
  readonly name: 'tracing';
  start(): Promise<void>;
  /** Flushes spans still buffered and stops exporting. Safe to call twice. */
  shutdown(): Promise<void>;
}

/** Creates optional self-tracing with @opentelemetry/sdk-node; nothing is traced until start. */
export function createSelfTracing(options: SelfTracingOptions): SelfTracing {
  const logger = options.logger.child({ component: 'tracing' });
  let sdk: NodeSDK | undefined;
  return {
    name: 'tracing',
    async start() {
      sdk = new NodeSDK({
        serviceName: 'heimdall',
        traceExporter: new OTLPTraceExporter({ url: options.endpoint }),
        sampler: new tracing.ParentBasedSampler({ root: new tracing.TraceIdRatioBasedSampler(options.sampleRatio) }),
        instrumentations: [],
      });
      sdk.start();
      logger.info({ endpoint: options.endpoint, sampleRatio: options.sampleRatio }, 'self-tracing enabled');
    },
    async shutdown() {
      const s = sdk;
      sdk = undefined;
      await s?.shutdown().catch((err: unknown) => logger.warn({ err }, 'self-tracing did not flush'));
    },
  };
}
