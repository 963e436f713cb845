import { LOGS, METRIC_TABLES, TRACE_ID_TS, TRACES } from '../tables.js';
import type { Migration } from './context.js';

/** How much larger than the parts it merges a merged part should be (ClickHouse's default is 5). */
export const EMBEDDED_MERGE_SELECTOR_BASE = 20;

// The embedded engine merges on the sidecar's own cores, beside ingest: with the default selector a
// span row is rewritten ~7 times in its first minutes (bench:ingest, 2k-row parts). A wider merge
// base waits for more parts of a size before merging them, so each row is rewritten fewer times, for
// somewhat more parts to read. A server's merges are its operator's to tune: nothing changes there.
export const migration0008: Migration = {
  version: 8,
  name: 'embedded engine: wider merges of the OpenTelemetry tables',
  statements: (ctx) =>
    ctx.embedded ? [TRACES.name, TRACE_ID_TS.name, LOGS.name, ...Object.values(METRIC_TABLES).map((t) => t.name)].map((t) => `ALTER TABLE ${t}${ctx.onCluster} MODIFY SETTING merge_selector_base = ${EMBEDDED_MERGE_SELECTOR_BASE}`) : [],
};
