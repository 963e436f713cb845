import { SCHEMA_MIGRATIONS } from '../tables.js';
import type { Migration } from './context.js';

export const migration0001: Migration = {
  version: 1,
  name: 'schema migrations table',
  statements: (ctx) => [
    `CREATE TABLE IF NOT EXISTS ${SCHEMA_MIGRATIONS.name}${ctx.onCluster} (
  version UInt32,
  name String,
  applied_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ${ctx.engine}
ORDER BY version`,
  ],
};
