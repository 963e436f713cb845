import { setServerSpans } from './spans.js';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { Config } from '../config/schema.js';
import type { Logger } from './logger.js';

/** Options for createSelfTracing. */
export interface SelfTracingOptions {
  /** The `telemetry.tracing` section: the OTLP/gRPC endpoint and the fraction of root spans sampled. */
  config: Pick<Config['telemetry']['tracing'], 'endpoint' | 'sample_ratio'>;
  logger: Logger;
}

/** The agent's own tracing: spans for its gRPC calls and HTTP requests, exported over OTLP. */
export interface SelfTracing {
  readonly name: 'tracing';
  start(): Promise<void>;
  /** Flushes spans still buffered and stops exporting. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Creates optional self-tracing with @opentelemetry/sdk-node. The SDK is loaded at start, so an
 * agent with tracing off never loads it (it costs start-up time and memory).
 */
export function createSelfTracing(options: SelfTracingOptions): SelfTracing {
  const logger = options.logger.child({ component: 'tracing' });
  let sdk: NodeSDK | undefined;
  return {
    name: 'tracing',
    async start() {
      // Both are CommonJS: their exports are `default` both in Node and in the bundle's split chunks.
      const [sdkNode, exporter] = await Promise.all([import('@opentelemetry/sdk-node'), import('@opentelemetry/exporter-trace-otlp-grpc')]);
      const { NodeSDK, tracing } = sdkNode.default;
      const { OTLPTraceExporter } = exporter.default;
      sdk = new NodeSDK({
        serviceName: 'heimdall',
        traceExporter: new OTLPTraceExporter({ url: options.config.endpoint }),
        sampler: new tracing.ParentBasedSampler({ root: new tracing.TraceIdRatioBasedSampler(options.config.sample_ratio) }),
        instrumentations: [],
      });
      sdk.start();
      setServerSpans(true);
      logger.info({ endpoint: options.config.endpoint, sampleRatio: options.config.sample_ratio }, 'self-tracing enabled');
    },
    async shutdown() {
      const s = sdk;
      sdk = undefined;
      setServerSpans(false);
      await s?.shutdown().catch((err: unknown) => logger.warn({ err }, 'self-tracing did not flush'));
    },
  };
}
