import type { Storage } from '../storage/storage.js';
import type { Logger } from '../telemetry/logger.js';
import { JobError } from './errors.js';
import type { JobTable } from './job-table.js';
import type { JobStore } from './store.js';

/** The table kept in step with the job store: loads, and writes one at a time. */
export interface StoredJobs {
  /** Runs `fn` after every store write and load before it, so a load never undoes a change in flight. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** A store write; UNAVAILABLE (nothing changed) when storage is not ready or the write fails. */
  saved(write: () => Promise<void>): Promise<void>;
  /** Applies what the store holds to the table; a call during one joins it. Throws when storage cannot answer. */
  resync(): Promise<void>;
  /** UNAVAILABLE until the first resync has succeeded. */
  mustRestored(): void;
  /** Resolves when no resync is going on. Never rejects. */
  settled(): Promise<void>;
}

/** Creates it. Owns the write chain, the resync in flight and whether the store was loaded once. */
export function createStoredJobs(options: { store: JobStore; table: Pick<JobTable, 'applyStored'>; storage: Pick<Storage, 'requireReady'>; logger: Logger }): StoredJobs {
  const { store, logger } = options;
  let chain: Promise<unknown> = Promise.resolve();
  let syncing: Promise<void> | undefined;
  /** Set once the stored jobs are loaded: until then API calls on them answer UNAVAILABLE. */
  let restored = false;
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn);
    chain = p.catch(() => undefined);
    return p;
  };
  const sync = (): Promise<void> =>
    exclusive(async () => {
      const state = await store.load((name, error) => !restored && logger.error({ job: name, error }, 'stored job is no longer valid: not scheduled'));
      options.table.applyStored(state, !restored);
      restored = true;
    });
  return {
    exclusive,
    async saved(write) {
      options.storage.requireReady('the job cannot be saved');
      try {
        await write();
      } catch (err) {
        throw new JobError('unavailable', `storage cannot save the job: ${(err as Error).message}; retry later`);
      }
    },
    resync: () => (syncing ??= sync().finally(() => (syncing = undefined))),
    mustRestored() {
      if (!restored) throw new JobError('unavailable', 'scheduled jobs are not loaded from storage yet; retry later');
    },
    settled: async () => {
      await syncing?.catch(() => undefined);
    },
  };
}
