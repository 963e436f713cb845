import type { Migration } from './context.js';
import { migration0001 } from './0001-schema-migrations.js';
import { migration0002 } from './0002-otel-traces.js';
import { migration0003 } from './0003-otel-logs.js';
import { migration0004 } from './0004-otel-metrics.js';
import { migration0005 } from './0005-heimdall-events.js';
import { migration0006 } from './0006-security-state.js';
import { migration0007 } from './0007-jobs.js';
import { migration0008 } from './0008-embedded-merges.js';
import { migration0009 } from './0009-trace-attribute-codecs.js';

/** Every migration in order. Never edit an applied one: add a new number. */
export const MIGRATIONS: readonly Migration[] = [migration0001, migration0002, migration0003, migration0004, migration0005, migration0006, migration0007, migration0008, migration0009];

/** Every table with a retention TTL, with its time column and the retention setting it follows. */
export const RETENTION_TABLES = MIGRATIONS.flatMap((m) => m.retention ?? []);
