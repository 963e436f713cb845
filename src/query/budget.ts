import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { Counter, type Registry } from 'prom-client';
import type { Principal } from '../auth/auth.js';
import type { Config } from '../config/schema.js';
import { formatMs, formatMsRoughly, parseDuration } from '../config/units.js';
import { invalidFields } from '../errors/agent-error.js';
import type { CallContext } from '../server/grpc-service.js';
import { budgetSettings, limitHit, limitRefusal, MAX_RESULT_ROWS } from '../storage/read-budget.js';
import type { Storage } from '../storage/storage.js';
import type { QueryParams } from '../storage/transport.js';
import { timeRange } from '../time/range.js';
import { createCallQueries } from './call.js';
import { createQueryScheduler } from './scheduler.js';

/**
 * Refuses a range wider than `maxMs` (the `query.max_window` setting) with INVALID_ARGUMENT naming
 * `field`, the limit and the width asked for; returns the range when it fits.
 */
function withinWindow<R extends { start: bigint; end: bigint }>(range: R, maxMs: number, field: string): R {
  const widthMs = (range.end - range.start) / 1_000_000n;
  if (widthMs > BigInt(maxMs)) {
    throw invalidFields([{ field, description: `the window is at most ${formatMs(maxMs)} (query.max_window), got ${formatMsRoughly(Number(widthMs))}; narrow it, or ask for several narrower windows` }]);
  }
  return range;
}

/** Runs one storage query of a call. */
export type Query = <T>(sql: string, params: QueryParams) => Promise<T[]>;

/** A time range, nanoseconds since the epoch: [start, end). */
export interface Range {
  start: bigint;
  end: bigint;
}

/** The window fields of a QueryService request. */
export interface WindowRequest {
  startTime?: Timestamp | undefined;
  endTime?: Timestamp | undefined;
  /** A duration back from end_time, e.g. `1h`; empty when not given. */
  since?: string;
}

/** How wide a window without start_time is: `since` when given (INVALID_ARGUMENT naming it when malformed or beside start_time), else `fallbackMs`. */
function widthOf(req: WindowRequest, fallbackMs: number): number {
  if (!req.since) return fallbackMs;
  if (req.startTime) throw invalidFields([{ field: 'since', description: 'give start_time or since, not both' }]);
  const ms = parseDuration(req.since);
  if (ms === undefined || ms <= 0) throw invalidFields([{ field: 'since', description: `expected a duration such as 15m, 1h or 7d (units ms, s, m, h, d, w), got ${JSON.stringify(req.since.slice(0, 64))}` }]);
  return ms;
}

/** Options for createQueryBudget. */
export interface QueryBudgetOptions {
  /** The `query` section. */
  config: Config['query'];
  storage: Storage;
  metrics: Registry;
}

/** The budgets of QueryService calls: fair slots, engine limits, windows; each refusal names its limit and is counted. */
export interface QueryBudget {
  /**
   * The storage queries of one call, taking the caller's turns. `read` queries read all they match
   * (summaries, trace lookups) and also run under the read limits; `list` queries stop at their page.
   */
  queries(ctx: CallContext, kind: 'list' | 'read'): Query;
  /**
   * A request's window, at most query.max_window: [start_time, end_time), or without start_time
   * `since` (a duration) or else `fallbackMs` wide, ending at end_time (else now).
   */
  window(req: WindowRequest, fallbackMs: number): Range;
  /** `range` when it is at most query.max_window wide, else INVALID_ARGUMENT naming `field`. */
  checked<R extends Range>(range: R, field: string): R;
}

/**
 * Who takes turns for query slots: a tenant-bound token's tenant, else the token, else every
 * caller without a token together. Never the tenant a caller asks for, which would let a token
 * without a tenant use up that tenant's own turns.
 */
export function callerKey(principal: Principal | undefined): string {
  if (!principal) return 'callers without a token';
  return principal.tenant !== undefined ? `tenant ${JSON.stringify(principal.tenant)}` : `token ${JSON.stringify(principal.name)}`;
}

/** Creates the budgets of QueryService, with its scheduler and `heimdall_query_refused_total`. */
export function createQueryBudget(options: QueryBudgetOptions): QueryBudget {
  const limits = options.config;
  const refused = new Counter({
    name: 'heimdall_query_refused_total',
    help: 'QueryService calls refused or ended by a budget, by limit (timeout, max_rows_to_read, max_bytes_to_read, max_memory, max_result_rows, max_window, max_queued_per_tenant, max_queued, queue_timeout).',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  const scheduler = createQueryScheduler({
    maxConcurrent: limits.max_concurrent,
    maxConcurrentPerTenant: limits.max_concurrent_per_tenant,
    maxQueuedPerTenant: limits.max_queued_per_tenant,
    maxQueued: limits.max_queued,
    queueTimeoutMs: limits.queue_timeout,
    metrics: options.metrics,
    onRefused: (limit) => refused.inc({ limit }),
  });
  // A listing stops at its page, but ClickHouse checks read limits against the rows its filter
  // could match before the LIMIT stops it: listings run under the time and memory limits only.
  const settings = { list: budgetSettings(limits, { maxResultRows: MAX_RESULT_ROWS }), read: budgetSettings(limits, { reads: true, maxResultRows: MAX_RESULT_ROWS }) };

  /** A budget the engine enforced, as the refusal that names it; anything else as it is. */
  const overBudget = (err: unknown): unknown => {
    const limit = limitHit(err);
    if (!limit) return err;
    refused.inc({ limit });
    return limitRefusal(limit, limits);
  };

  const checked = <R extends Range>(range: R, field: string): R => {
    try {
      return withinWindow(range, limits.max_window, field);
    } catch (err) {
      refused.inc({ limit: 'max_window' });
      throw err;
    }
  };

  return {
    queries(ctx, kind) {
      const run = createCallQueries({ scheduler, key: callerKey(ctx.principal), parallel: limits.max_concurrent_per_tenant, signal: ctx.signal });
      return async <T>(sql: string, params: QueryParams): Promise<T[]> => {
        options.storage.requireReady('unreachable, or its schema is not migrated yet');
        // Mapped inside the work: the call's other queries end with this same status, counted once.
        return run(async () => {
          try {
            return await options.storage.transport.query<T>(sql, params, settings[kind]);
          } catch (err) {
            throw overBudget(err);
          }
        });
      };
    },
    window: (req, fallbackMs) => checked(timeRange(req.startTime, req.endTime, BigInt(widthOf(req, fallbackMs)) * 1_000_000n), req.since ? 'since' : 'start_time'),
    checked,
  };
}
