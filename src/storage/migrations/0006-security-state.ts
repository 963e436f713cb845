import { SECURITY_STATE } from '../tables.js';
import type { Migration } from './context.js';

// The rate limiter's security state: the mode, blocks and approval actions, one row per record and
// change; the newest version of a key wins, and a deleted one disappears (ReplacingMergeTree).
export const migration0006: Migration = {
  version: 6,
  name: SECURITY_STATE.name,
  statements: (ctx) => [
    `CREATE TABLE IF NOT EXISTS ${SECURITY_STATE.name}${ctx.onCluster} (
  Kind LowCardinality(String),
  Key String,
  Version UInt64,
  Deleted UInt8,
  Data String CODEC(ZSTD(1))
) ENGINE = ${ctx.replacingEngine('Version, Deleted')}
ORDER BY (Kind, Key)`,
  ],
};
