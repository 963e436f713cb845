import { formatIssue } from '../config/load.js';
import type { Storage } from '../storage/storage.js';
import { JOBS } from '../storage/tables.js';
import { jobSpecSchema, type JobSpec } from './spec.js';

/** A scheduled job created through the API, as stored. */
export interface StoredJob {
  spec: JobSpec;
  createdAt: number;
  updatedAt: number;
}

/**
 * A pause or resume of a config-defined job through the API. It holds while the config file's
 * `active` for the job is still `configActive` (an edit of that flag in the file wins).
 */
export interface StoredPause {
  paused: boolean;
  configActive: boolean;
  updatedAt: number;
}

/** What the store holds. */
export interface StoredState {
  jobs: StoredJob[];
  pauses: Map<string, StoredPause>;
}

/** Scheduled jobs created through the API, kept in storage so they survive restarts and reach every replica. */
export interface JobStore {
  /** Everything stored; a job that no longer validates is skipped and reported through `onInvalid`. */
  load(onInvalid: (name: string, error: string) => void): Promise<StoredState>;
  /** Stores a job (the newest version of a name wins). */
  put(job: StoredJob): Promise<void>;
  /** Stores a pause or resume of a config job. */
  putPause(name: string, pause: StoredPause): Promise<void>;
  remove(name: string): Promise<void>;
}

/** Creates the job store over storage. */
export function createJobStore(storage: Storage): JobStore {
  let version = 0;
  const write = (name: string, data: StoredJob | { pause: StoredPause } | undefined): Promise<void> => {
    version = Math.max(version + 1, Date.now() * 1000);
    return storage.transport.insert(JOBS.name, [{ Name: name, Version: version, Deleted: data ? 0 : 1, Spec: data ? JSON.stringify(data) : '' }]);
  };
  return {
    async load(onInvalid) {
      const rows = await storage.transport.query<{ Name: string; Spec: string }>(`SELECT Name, Spec FROM ${JOBS.name} FINAL WHERE Deleted = 0 ORDER BY Name`);
      const state: StoredState = { jobs: [], pauses: new Map() };
      for (const r of rows) {
        try {
          const stored = JSON.parse(r.Spec) as Partial<StoredJob> & { pause?: StoredPause };
          if (stored.pause) {
            state.pauses.set(r.Name, stored.pause);
            continue;
          }
          const parsed = jobSpecSchema.safeParse(stored.spec, { reportInput: true });
          if (parsed.success) state.jobs.push({ spec: parsed.data, createdAt: Number(stored.createdAt), updatedAt: Number(stored.updatedAt) });
          else onInvalid(r.Name, parsed.error.issues.flatMap(formatIssue).join('; '));
        } catch (err) {
          onInvalid(r.Name, (err as Error).message);
        }
      }
      return state;
    },
    put: (job) => write(job.spec.name, job),
    putPause: (name, pause) => write(name, { pause }),
    remove: (name) => write(name, undefined),
  };
}
