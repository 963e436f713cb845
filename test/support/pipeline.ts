import { Registry } from 'prom-client';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createHealthRegistry, type HealthRegistry } from '../../src/health/registry.js';
import { createPipeline, type Pipeline } from '../../src/ingest/pipeline/pipeline.js';
import { createStorage, type Storage } from '../../src/storage/storage.js';
import type { QueryParams } from '../../src/storage/transport.js';
import { merge } from './agent.js';
import { silentLogger, tempDir } from './temp.js';

/** Embedded storage in a temporary directory, built from the schema's defaults; not started. */
export interface TestStorage {
  storage: Storage;
  /** Rows of a SELECT (64-bit integers as strings). */
  rows<T = Record<string, unknown>>(sql: string, params?: QueryParams): Promise<T[]>;
  /** Shuts storage down and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Creates embedded storage (chdb) in a fresh temporary directory; `start()` it, or hand it to a pipeline not started. */
export function createTestStorage(): TestStorage {
  const dir = tempDir('heimdall-storage-');
  const config = validateConfig({ storage: { embedded: { path: dir.path } } });
  const storage = createStorage({ config: config.storage, logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() });
  return {
    storage,
    rows: (sql, params) => storage.transport.query(sql, params),
    async stop() {
      await storage.shutdown();
      dir.cleanup();
    },
  };
}

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
  const config = validateConfig({ ingest: merge({ queue: { path: dir.path } }, ingest) });
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
