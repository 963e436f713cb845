import type { Config } from '../config/schema.js';
import { formatBytes, formatMs } from '../config/units.js';
import { AgentError } from '../errors/agent-error.js';
import { StorageError } from './errors.js';
import type { QuerySettings } from './transport.js';

/** A budget of the `query` section that ClickHouse enforces on one storage query (`max_result_rows` is ours, not a setting). */
export type QueryLimit = 'timeout' | 'max_rows_to_read' | 'max_bytes_to_read' | 'max_memory' | 'max_result_rows';

/** Rows one QueryService storage query may return: a backstop under its own LIMITs (a timeline's 10,000 items is the most). */
export const MAX_RESULT_ROWS = 10_000;

/** ClickHouse error codes of the budgets, and the limit each names. */
const LIMIT_CODES: Record<number, QueryLimit> = { 159: 'timeout', 160: 'timeout', 158: 'max_rows_to_read', 307: 'max_bytes_to_read', 241: 'max_memory', 396: 'max_result_rows' };

/**
 * ClickHouse settings of a storage query under the `query` budgets (on both transports): always the
 * time limit; the memory limit unless `memory` is false (a query whose memory is what it returns,
 * bounded otherwise); with `reads`, the read limits (for queries that read all they match); with
 * `maxResultRows`, a cap on the rows returned.
 */
export function budgetSettings(limits: Config['query'], options: { reads?: boolean; memory?: boolean; maxResultRows?: number } = {}): QuerySettings {
  return {
    max_execution_time: limits.timeout / 1000,
    timeout_overflow_mode: 'throw',
    ...(options.memory !== false ? { max_memory_usage: limits.max_memory } : {}),
    ...(options.reads ? { max_rows_to_read: limits.max_rows_to_read, max_bytes_to_read: limits.max_bytes_to_read, read_overflow_mode: 'throw' } : {}),
    ...(options.maxResultRows !== undefined ? { max_result_rows: options.maxResultRows, result_overflow_mode: 'throw' } : {}),
  };
}

/** The budget a storage error says the engine stopped the query at, or undefined for any other error. */
export function limitHit(err: unknown): QueryLimit | undefined {
  return err instanceof StorageError && err.code !== undefined ? LIMIT_CODES[err.code] : undefined;
}

/** Why the engine stopped a query at `limit`, naming the setting and its value: deadline_exceeded for the time limit, else resource_exhausted. */
export function limitRefusal(limit: QueryLimit, limits: Config['query']): AgentError {
  const narrow = 'narrow the time window or add filters';
  switch (limit) {
    case 'timeout':
      return new AgentError('deadline_exceeded', `query.timeout: a storage query ran longer than ${formatMs(limits.timeout)} (ClickHouse max_execution_time) and was stopped; ${narrow}`);
    case 'max_memory':
      return new AgentError('resource_exhausted', `query.max_memory: a storage query needed more than ${formatBytes(limits.max_memory)} of memory (ClickHouse max_memory_usage) and was stopped; ${narrow}, or ask for fewer keys`);
    case 'max_result_rows':
      return new AgentError('resource_exhausted', `a storage query would return more than ${MAX_RESULT_ROWS} rows (ClickHouse max_result_rows) and was stopped; ${narrow}`);
    default: {
      const what = limit === 'max_rows_to_read' ? `${limits.max_rows_to_read} rows` : `${limits.max_bytes_to_read} bytes`;
      return new AgentError('resource_exhausted', `query.${limit}: a storage query would read more than ${what} and was stopped; ${narrow}`);
    }
  }
}
