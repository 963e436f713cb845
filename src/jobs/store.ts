import type { Storage } from '../storage/storage.js';
import { jobSpecSchema, type JobSpec } from './spec.js';

/** Table of scheduled jobs created through the API. */
export const JOBS_TABLE = 'heimdall_jobs';

/** A scheduled job created through the API, as stored. */
export interface StoredJob {
  spec: JobSpec;
  createdAt: number;
  updatedAt: number;
}

/** Scheduled jobs created through the API, kept in storage so they survive restarts. */
export interface JobStore {
  /** Every stored job; a row that no longer validates is skipped and reported through `onInvalid`. */
  load(onInvalid: (name: string, error: string) => void): Promise<StoredJob[]>;
  /** Stores a job (the newest version of a name wins). */
  put(job: StoredJob): Promise<void>;
  remove(name: string): Promise<void>;
}

/** Creates the job store over storage. */
export function createJobStore(storage: Storage): JobStore {
  let version = 0;
  const write = (name: string, data: StoredJob | undefined): Promise<void> => {
    version = Math.max(version + 1, Date.now() * 1000);
    return storage.transport.insert(JOBS_TABLE, [{ Name: name, Version: version, Deleted: data ? 0 : 1, Spec: data ? JSON.stringify(data) : '' }]);
  };
  return {
    async load(onInvalid) {
      const rows = await storage.transport.query<{ Name: string; Spec: string }>(`SELECT Name, Spec FROM ${JOBS_TABLE} FINAL WHERE Deleted = 0 ORDER BY Name`);
      const out: StoredJob[] = [];
      for (const r of rows) {
        try {
          const stored = JSON.parse(r.Spec) as StoredJob;
          const parsed = jobSpecSchema.safeParse(stored.spec);
          if (parsed.success) out.push({ spec: parsed.data, createdAt: stored.createdAt, updatedAt: stored.updatedAt });
          else onInvalid(r.Name, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
        } catch (err) {
          onInvalid(r.Name, (err as Error).message);
        }
      }
      return out;
    },
    put: (job) => write(job.spec.name, job),
    remove: (name) => write(name, undefined),
  };
}
