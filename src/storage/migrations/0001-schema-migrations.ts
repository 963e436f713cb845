import type { Migration } from './context.js';

/** The table that records applied migrations. */
export const MIGRATIONS_TABLE = 'heimdall_schema_migrations';

export const migration0001: Migration = {
  version: 1,
  name: 'schema migrations table',
  statements: (ctx) => [
    `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE}${ctx.onCluster} (
  version UInt32,
  name String,
  applied_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ${ctx.engine}
ORDER BY version`,
  ],
};
