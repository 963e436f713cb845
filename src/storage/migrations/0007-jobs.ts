import { JOB_RUNS, JOBS } from '../tables.js';
import { ttlClause, type Migration } from './context.js';

// The scheduler's state. Scheduled jobs created through the API: one row per change, the newest
// version of a name wins and a deleted one disappears. Runs: one row per state change of a run
// (pending, running, progress, end), the newest version of an id wins; ids are UUIDv7, so the key
// is in creation order and listings read from the newest.
export const migration0007: Migration = {
  version: 7,
  name: JOBS.name,
  retention: [{ table: JOB_RUNS.name, column: 'toDateTime(CreatedAt)', signal: 'events' }],
  statements: (ctx) => [
    `CREATE TABLE IF NOT EXISTS ${JOBS.name}${ctx.onCluster} (
  Name String,
  Version UInt64,
  Deleted UInt8,
  Spec String CODEC(ZSTD(1))
) ENGINE = ${ctx.replacingEngine('Version, Deleted')}
ORDER BY Name`,
    `CREATE TABLE IF NOT EXISTS ${JOB_RUNS.name}${ctx.onCluster} (
  Id String,
  JobName LowCardinality(String),
  Kind LowCardinality(String),
  Params String CODEC(ZSTD(1)),
  TimeoutMs UInt64,
  Attempts UInt32,
  BackoffMs UInt64,
  Trigger LowCardinality(String),
  Status LowCardinality(String),
  Attempt UInt32,
  Progress UInt8,
  Message String CODEC(ZSTD(1)),
  Error String CODEC(ZSTD(1)),
  Result String CODEC(ZSTD(1)),
  CorrelationId String,
  Instance LowCardinality(String),
  Fence UInt64,
  ScheduledTime DateTime64(3),
  CreatedAt DateTime64(3),
  StartedAt DateTime64(3),
  EndedAt DateTime64(3),
  Version UInt64
) ENGINE = ${ctx.replacingEngine('Version')}
PARTITION BY toYYYYMM(CreatedAt)
ORDER BY Id${ttlClause('toDateTime(CreatedAt)', ctx.retention.events)}`,
  ],
};
