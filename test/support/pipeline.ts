import { Registry } from 'prom-client';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createHealthRegistry, type HealthRegistry } from '../../src/health/registry.js';
import { createPipeline, type Pipeline } from '../../src/ingest/pipeline/pipeline.js';
import type { Storage } from '../../src/storage/storage.js';
import { mergeTrees } from './tree.js';
import { silentLogger, tempDir } from './temp.js';

/** A pipeline over a given storage, with its configuration, registry and health. */
export interface TestPipeline {
  pipeline: Pipeline;
  /** The whole configuration the pipeline's `ingest` section came from. */
  config: Config;
  metrics: Registry;
  health: HealthRegistry;
  /** Shuts the pipeline down and removes its queue directory. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Creates (does not start) an ingest pipeline over `storage`, configured by the schema's defaults
 * with `ingest` overrides merged in; its durable queue (ack: queued) lives in a fresh temporary directory.
 */
export function createTestPipeline(storage: Storage, ingest: Record<string, unknown> = {}): TestPipeline {
  const dir = tempDir('heimdall-queue-');
  const config = validateConfig({ ingest: mergeTrees({ queue: { path: dir.path } }, ingest) });
  const metrics = new Registry();
  const health = createHealthRegistry();
  const pipeline = createPipeline({ config: config.ingest, storage, logger: silentLogger(), metrics, health });
  return {
    pipeline,
    config,
    metrics,
    health,
    async stop() {
      await pipeline.shutdown();
      dir.cleanup();
    },
  };
}
