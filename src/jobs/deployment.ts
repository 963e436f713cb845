import type { Config } from '../config/schema.js';
import { redisTargetOf, type RedisTarget } from '../redis/client.js';
import type { SchemaContext } from '../storage/migrations/context.js';
import { schemaContextFor } from '../storage/storage.js';

/** What the jobs component needs to know of the rest of the agent's configuration (storage, ingest queue, Redis). */
export interface JobsDeployment {
  /** Storage other agents may share (a ClickHouse server): runs of agents that went away are only retried under a Redis claim. */
  sharedStorage: boolean;
  /** Redis for cluster jobs' leases (`jobs.redis`, else `ratelimit.redis` with the jobs' key prefix); without it cluster jobs run on this replica. */
  redis: { target: RedisTarget; keyPrefix: string } | undefined;
  /** Directories the system check watches for free space: the embedded store, the ingest queue (ack `queued`), the export directory. */
  dataPaths: readonly string[];
  /** How the retention job names tables and their TTLs. */
  schema: Pick<SchemaContext, 'onCluster' | 'retention'>;
}

/** The jobs component's view of the other sections, derived once from the whole configuration. */
export function jobsDeployment(config: Config): JobsDeployment {
  const shared = config.ratelimit.redis;
  const redis = config.jobs.redis ?? (shared && { ...shared, key_prefix: 'heimdall:jobs:' });
  const sharedStorage = Boolean(config.storage.clickhouse.url) && config.storage.mode !== 'embedded';
  return {
    sharedStorage,
    redis: redis && { target: redisTargetOf(redis), keyPrefix: redis.key_prefix },
    dataPaths: [...(sharedStorage ? [] : [config.storage.embedded.path]), ...(config.ingest.ack === 'queued' ? [config.ingest.queue.path] : []), config.jobs.export_dir],
    schema: schemaContextFor(config.storage),
  };
}
