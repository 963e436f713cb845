/** The jobs component's view of the other sections: shared storage, Redis for leases, watched data paths. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { jobsDeployment } from '../../../src/jobs/deployment.js';

describe('jobs deployment', () => {
  it('with embedded storage and no Redis: nothing shared, the store and export directory watched', () => {
    const d = jobsDeployment(validateConfig({ storage: { embedded: { path: '/data/store' } }, jobs: { export_dir: '/data/exports' } }));
    expect(d.sharedStorage).toBe(false);
    expect(d.redis).toBeUndefined();
    expect(d.dataPaths).toEqual(['/data/store', '/data/exports']);
  });

  it('with a ClickHouse server: shared storage, the store not watched; the ingest queue watched when ack is queued', () => {
    const d = jobsDeployment(validateConfig({ storage: { mode: 'server', clickhouse: { url: 'http://clickhouse:8123' } }, ingest: { ack: 'queued', queue: { path: '/data/queue' } }, jobs: { export_dir: '/data/exports' } }));
    expect(d.sharedStorage).toBe(true);
    expect(d.dataPaths).toEqual(['/data/queue', '/data/exports']);
  });

  it("leases through jobs.redis, else through ratelimit.redis under the jobs' own key prefix", () => {
    const shared = jobsDeployment(validateConfig({ ratelimit: { redis: { url: 'redis://shared:6379', key_prefix: 'rl:' } } }));
    expect(shared.redis).toEqual({ target: expect.objectContaining({ url: 'redis://shared:6379' }) as unknown, keyPrefix: 'heimdall:jobs:' });
    const own = jobsDeployment(validateConfig({ ratelimit: { redis: { url: 'redis://shared:6379' } }, jobs: { redis: { url: 'redis://jobs:6379', key_prefix: 'j:' } } }));
    expect(own.redis).toEqual({ target: expect.objectContaining({ url: 'redis://jobs:6379' }) as unknown, keyPrefix: 'j:' });
  });
});
