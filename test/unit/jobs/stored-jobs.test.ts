/** The stored jobs alone: UNAVAILABLE until the first load, writes and loads one at a time, write failures mapped once. */
import { describe, expect, it } from 'vitest';
import { JobError } from '../../../src/jobs/errors.js';
import { createJobTable } from '../../../src/jobs/job-table.js';
import { jobSpecSchema } from '../../../src/jobs/spec.js';
import { createStoredJobs } from '../../../src/jobs/stored-jobs.js';
import { StorageNotReady } from '../../../src/storage/errors.js';
import { createJobStore, type JobStore, type StoredState } from '../../../src/jobs/store.js';
import { startEmbeddedStorage } from '../../support/embedded-storage.js';
import { silentLogger } from '../../support/temp.js';

/** A store whose loads the test answers one by one. */
function deferredStore() {
  const loads: Array<{ resolve: (s: StoredState) => void; reject: (e: Error) => void }> = [];
  const store: JobStore = {
    load: () => new Promise<StoredState>((resolve, reject) => loads.push({ resolve, reject })),
    put: async () => undefined,
    putPause: async () => undefined,
    remove: async () => undefined,
  };
  return { store, loads };
}

const empty = (): StoredState => ({ jobs: [], pauses: new Map() });
const flush = () => new Promise((r) => setImmediate(r));

describe('stored jobs', () => {
  it('answers UNAVAILABLE until a load has succeeded; a call during a load joins it', async () => {
    const { store, loads } = deferredStore();
    const applied: boolean[] = [];
    const stored = createStoredJobs({ store, table: { applyStored: (_s, first) => void applied.push(first) }, storage: { requireReady: () => undefined }, logger: silentLogger() });
    expect(() => stored.mustRestored()).toThrow(new JobError('unavailable', 'scheduled jobs are not loaded from storage yet; retry later'));
    const failing = stored.resync();
    expect(stored.resync()).toBe(failing);
    await flush();
    loads[0]?.reject(new Error('down'));
    await expect(failing).rejects.toThrow('down');
    expect(() => stored.mustRestored()).toThrow(JobError);
    const ok = stored.resync();
    await flush();
    loads[1]?.resolve(empty());
    await ok;
    stored.mustRestored();
    const again = stored.resync();
    await flush();
    loads[2]?.resolve(empty());
    await again;
    expect(applied).toEqual([true, false]);
    await stored.settled();
  });

  it('runs writes and loads one at a time in call order, so a load never undoes a change in flight', async () => {
    const { store, loads } = deferredStore();
    const order: string[] = [];
    const stored = createStoredJobs({ store, table: { applyStored: () => void order.push('load applied') }, storage: { requireReady: () => undefined }, logger: silentLogger() });
    const load = stored.resync();
    const write = stored.exclusive(async () => void order.push('write'));
    await flush();
    expect(order).toEqual([]);
    loads[0]?.resolve(empty());
    await Promise.all([load, write]);
    expect(order).toEqual(['load applied', 'write']);
  });

  it('a write answers UNAVAILABLE while storage is not ready or when it fails', async () => {
    let ready = false;
    const storage = {
      requireReady(what: string) {
        if (!ready) throw new StorageNotReady(what);
      },
    };
    const stored = createStoredJobs({ store: deferredStore().store, table: { applyStored: () => undefined }, storage, logger: silentLogger() });
    await expect(stored.saved(async () => undefined)).rejects.toThrow(new StorageNotReady('the job cannot be saved'));
    ready = true;
    await expect(stored.saved(() => Promise.reject(new Error('disk full')))).rejects.toThrow(new JobError('unavailable', 'storage cannot save the job: disk full; retry later'));
    await stored.saved(async () => undefined);
  });
});

describe('stored jobs over shared storage', () => {
  it('a resync picks up jobs created, paused and deleted by another replica', async () => {
    const db = await startEmbeddedStorage();
    const table = createJobTable({ onTick: async () => undefined, onOverlap: () => undefined, onChange: () => undefined, logger: silentLogger() });
    try {
      const stored = createStoredJobs({ store: createJobStore(db.storage), table, storage: db.storage, logger: silentLogger() });
      // The other replica writes through its own store over the same tables.
      const other = createJobStore(db.storage);
      const spec = jobSpecSchema.parse({ name: 'elsewhere', schedule: '0 3 * * *', kind: 'system-check' });
      const now = Date.now();
      await other.put({ spec, createdAt: now, updatedAt: now });
      await stored.resync();
      expect(table.get('elsewhere')?.spec.active).toBe(true);
      await other.put({ spec: { ...spec, active: false }, createdAt: now, updatedAt: now + 1 });
      await stored.resync();
      expect(table.get('elsewhere')?.spec.active).toBe(false);
      await other.remove('elsewhere');
      await stored.resync();
      expect(table.get('elsewhere')).toBeUndefined();
    } finally {
      table.stop();
      await db.stop();
    }
  });
});
