import { Registry } from 'prom-client';
import { validateConfig } from '../../src/config/load.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { createStorage, type Storage } from '../../src/storage/storage.js';
import type { QueryParams } from '../../src/storage/transport.js';
import { silentLogger, tempDir } from './temp.js';

/** Embedded storage (chdb) for a test, built from the schema's defaults. */
export interface TestStorage {
  storage: Storage;
  /** Its data directory. */
  path: string;
  /** Rows of a SELECT (64-bit integers as strings). */
  rows<T = Record<string, unknown>>(sql: string, params?: QueryParams): Promise<T[]>;
  /** Shuts storage down and removes its directory when the test made it. Safe to call twice. */
  stop(): Promise<void>;
}

/** Creates embedded storage in `path`, or in a fresh temporary directory; not started (`start()` it, or hand it to a pipeline not started). */
export function createTestStorage(path?: string): TestStorage {
  const dir = path === undefined ? tempDir('heimdall-storage-') : undefined;
  const at = path ?? dir!.path;
  const storage = createStorage({ config: validateConfig({ storage: { embedded: { path: at } } }).storage, logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() });
  return {
    storage,
    path: at,
    rows: (sql, params) => storage.transport.query(sql, params),
    async stop() {
      await storage.shutdown();
      dir?.cleanup();
    },
  };
}

/** Embedded storage (migrated and ready) in `path`, or in a fresh temporary directory removed by `stop`. */
export async function startEmbeddedStorage(path?: string): Promise<TestStorage> {
  const t = createTestStorage(path);
  await t.storage.start();
  if (!(await t.storage.whenReady(AbortSignal.timeout(60_000)))) throw new Error('embedded storage did not become ready');
  return t;
}
