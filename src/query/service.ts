import type { Registry } from 'prom-client';
import type { Principal } from '../auth/auth.js';
import type { Config } from '../config/schema.js';
import { SEVERITY_NAMES } from '../events/events.js';
import { invalidFields } from '../errors/agent-error.js';
import { QueryService } from '../gen/heimdall/v1/query_pb.js';
import { TENANT_ATTRIBUTE } from '../ingest/processors/enrichment.js';
import type { GrpcServer } from '../server/grpc.js';
import type { Storage } from '../storage/storage.js';
import { EVENTS, LOGS } from '../storage/tables.js';
import { createQueryBudget, type Query } from './budget.js';
import { listPage, type PagedTable, type PageFilter, type PageRequest } from './page.js';
import { EVENT_COLUMNS, eventOf, LOG_COLUMNS, logOf, type EventRow, type LogRow } from './rows.js';
import { eventSeries } from './event-series.js';
import { redSeries } from './red.js';
import { listServices } from './services.js';
import { summarize } from './summary.js';
import { searchTraces } from './trace-search.js';
import { traceTimeline } from './timeline.js';

/** Options for addQueryService. */
export interface QueryServiceOptions {
  grpc: GrpcServer;
  storage: Storage;
  /** The `query` section: budgets of every storage query, windows, fair slots between tenants. */
  config: Config['query'];
  metrics: Registry;
}

/**
 * A LIKE pattern for text containing `s`, compared with ClickHouse's `lower()` (which lowercases
 * ASCII only, so only A-Z are lowercased here); %, _ and \ are taken literally.
 */
function containsPattern(s: string): string {
  return `%${s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The tenant whose rows a caller reads: a tenant-bound token's, else the one asked for (empty: every tenant). */
function tenantRead(principal: Principal | undefined, requested: string): string {
  return principal?.tenant ?? requested;
}

/**
 * Adds `heimdall.v1.QueryService` (scope `query`). Every filter travels as a ClickHouse query
 * parameter; a tenant-bound token sees only its tenant's events (TenantId) and spans and logs
 * (resource attribute `tenant.id`), in every listing, search, series and summary.
 */
export function addQueryService(options: QueryServiceOptions): void {
  const limits = options.config;
  const budget = createQueryBudget({ config: limits, storage: options.storage, metrics: options.metrics });

  const page = <T extends { ts: string }>(query: Query, table: PagedTable<T>, req: PageRequest, filters: readonly PageFilter[]) => listPage(budget, limits.default_window, query, table, req, filters);

  options.grpc.addService(
    QueryService,
    {
      async listEvents(req, ctx) {
        const tenant = tenantRead(ctx.principal, req.tenantId);
        const minSeverity = req.minSeverity as number;
        if (minSeverity < 0 || minSeverity >= SEVERITY_NAMES.length) throw invalidFields([{ field: 'min_severity', description: `unknown severity ${minSeverity}` }]);
        const { rows, next } = await page<EventRow>(
          budget.queries(ctx, 'list'),
          { spec: EVENTS, columns: EVENT_COLUMNS, idOf: (r) => r.Id },
          req,
          [
            ['TenantId = {tenant:String}', { tenant }, tenant !== ''],
            ['EventType IN {types:Array(String)}', { types: req.eventTypes }, req.eventTypes.length > 0],
            ['Source IN {sources:Array(String)}', { sources: req.sources }, req.sources.length > 0],
            ['Category IN {categories:Array(String)}', { categories: req.categories }, req.categories.length > 0],
            ['Severity >= {minSeverity:UInt8}', { minSeverity }, minSeverity > 0],
            ['CorrelationId = {correlationId:String}', { correlationId: req.correlationId }, req.correlationId !== ''],
            ['ActorId = {actorId:String}', { actorId: req.actorId }, req.actorId !== ''],
            ['Status = {status:String}', { status: req.status }, req.status !== ''],
            ['lower(Message) LIKE {message:String}', { message: containsPattern(req.messageContains) }, req.messageContains !== ''],
          ],
        );
        return { events: rows.map(eventOf), nextPageToken: next };
      },

      async listLogs(req, ctx) {
        const tenant = tenantRead(ctx.principal, '');
        const { rows, next } = await page<LogRow>(
          budget.queries(ctx, 'list'),
          { spec: LOGS, columns: LOG_COLUMNS, idOf: (r) => r.id },
          req,
          [
            ['ResourceAttributes[{tenantKey:String}] = {tenant:String}', { tenant, tenantKey: TENANT_ATTRIBUTE }, tenant !== ''],
            ['ServiceName IN {services:Array(String)}', { services: req.services }, req.services.length > 0],
            ['SeverityNumber >= {minSeverity:UInt8}', { minSeverity: req.minSeverityNumber }, req.minSeverityNumber > 0],
            ['TraceId = {traceId:String}', { traceId: req.traceId.toLowerCase() }, req.traceId !== ''],
            ['lower(Body) LIKE {body:String}', { body: containsPattern(req.bodyContains) }, req.bodyContains !== ''],
          ],
        );
        return { records: rows.map(logOf), nextPageToken: next };
      },

      async getTrace(req, ctx) {
        return traceTimeline(budget.queries(ctx, 'read'), tenantRead(ctx.principal, ''), req.id);
      },

      async getSummary(req, ctx) {
        return summarize(budget.queries(ctx, 'read'), budget.window(req, limits.summary_window), tenantRead(ctx.principal, ''), req.top);
      },

      async listServices(req, ctx) {
        return listServices(budget.queries(ctx, 'read'), budget.window(req, limits.default_window), tenantRead(ctx.principal, ''), req);
      },

      async searchTraces(req, ctx) {
        return searchTraces(budget.queries(ctx, 'read'), budget, limits.default_window, tenantRead(ctx.principal, ''), req);
      },

      async getRedSeries(req, ctx) {
        return redSeries(budget.queries(ctx, 'read'), budget.window(req, limits.default_window), tenantRead(ctx.principal, ''), req);
      },

      async getEventSeries(req, ctx) {
        return eventSeries(budget.queries(ctx, 'read'), budget.window(req, limits.summary_window), tenantRead(ctx.principal, ''), req);
      },
    },
    'query',
  );
}
