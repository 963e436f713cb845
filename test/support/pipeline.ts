import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createHealthRegistry, type HealthRegistry } from '../../src/health/registry.js';
import { createPipeline, type Pipeline } from '../../src/ingest/pipeline/pipeline.js';
import type { Storage } from '../../src/storage/storage.js';
import { startEmbeddedStorage, type TestStorage } from './embedded-storage.js';
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

/** A file's embedded storage and the pipelines its tests start on it. */
export interface TestPipelines {
  /** The file's embedded storage (started before the file's first test). */
  readonly store: TestStorage;
  /** Creates and starts a pipeline with `ingest` overrides over `storage` (the file's store by default); stopped after the test. */
  start(ingest?: Record<string, unknown>, storage?: Storage): Promise<TestPipeline>;
}

/**
 * Registers the hooks of a file whose tests run pipelines over embedded storage: the storage starts
 * before the file's tests and stops after them; each test's pipeline stops after that test.
 */
export function useTestPipelines(): TestPipelines {
  let store: TestStorage | undefined;
  const started: TestPipeline[] = [];
  beforeAll(async () => {
    store = await startEmbeddedStorage();
  }, 120_000);
  afterAll(() => store?.stop(), 60_000);
  afterEach(async () => {
    for (const t of started.splice(0)) await t.stop();
  }, 60_000);
  return {
    get store(): TestStorage {
      if (!store) throw new Error('the embedded storage starts in beforeAll: use it inside a test');
      return store;
    },
    async start(ingest = {}, storage) {
      const t = createTestPipeline(storage ?? this.store.storage, ingest);
      started.push(t);
      await t.pipeline.start();
      return t;
    },
  };
}

/** A file's embedded storage and one started pipeline over it, shared by the file's tests. */
export interface SharedPipeline {
  readonly db: TestStorage;
  readonly pipeline: Pipeline;
}

/**
 * Registers the hooks of a file whose tests share one embedded storage and one pipeline over it
 * (security tests whose changes are audited as events): started before the file's first test,
 * stopped after its last.
 */
export function useSharedPipeline(): SharedPipeline {
  let db: TestStorage | undefined;
  let t: TestPipeline | undefined;
  beforeAll(async () => {
    db = await startEmbeddedStorage();
    t = createTestPipeline(db.storage);
    await t.pipeline.start();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    await db?.stop();
  }, 60_000);
  const started = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('the storage and pipeline start in beforeAll: use them inside a test');
    return x;
  };
  return {
    get db() {
      return started(db);
    },
    get pipeline() {
      return started(t).pipeline;
    },
  };
}
