import { Registry } from 'prom-client';
import { validateConfig } from '../../src/config/load.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { createStorage, type Storage } from '../../src/storage/storage.js';
import { silentLogger, tempDir } from './temp.js';

/** Embedded storage (migrated) in `path`, or in a fresh temporary directory removed by `stop`. */
export async function startEmbeddedStorage(path?: string): Promise<{ storage: Storage; path: string; stop(): Promise<void> }> {
  const dir = path === undefined ? tempDir() : undefined;
  const at = path ?? dir!.path;
  const storage = createStorage({ config: validateConfig({ storage: { embedded: { path: at } } }).storage, logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() });
  await storage.start();
  if (!(await storage.whenReady(AbortSignal.timeout(60_000)))) throw new Error('embedded storage did not become ready');
  return {
    storage,
    path: at,
    async stop() {
      await storage.shutdown();
      dir?.cleanup();
    },
  };
}
