import { Status_StatusCode } from '../gen/opentelemetry/proto/trace/v1/trace_pb.js';
import { STATUS } from '../ingest/otlp/traces.js';
import { TENANT_ATTRIBUTE } from '../ingest/processors/enrichment.js';
import type { QueryParams } from '../storage/transport.js';
import type { Range } from './budget.js';

/** Rows whose Timestamp is in the window {start}..{end} (ns, end excluded); see windowParams. */
const IN_WINDOW = 'Timestamp >= fromUnixTimestamp64Nano({start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({end:Int64})';

/** ` AND` rows of an OpenTelemetry table of the tenant (resource attribute tenant.id), when not empty (every tenant); see tenantParams. */
export const otelTenant = (tenant: string): string => (tenant !== '' ? ' AND ResourceAttributes[{tenantKey:String}] = {tenant:String}' : '');

/** Rows of an OpenTelemetry table in the window, and of the tenant unless empty. */
export const otelWhere = (tenant: string): string => `${IN_WINDOW}${otelTenant(tenant)}`;

/** Rows of heimdall_events in the window, and of the tenant unless empty. */
export const eventsWhere = (tenant: string): string => `${IN_WINDOW}${tenant !== '' ? ' AND TenantId = {tenant:String}' : ''}`;

/** The parameters of otelTenant (and the tenant of eventsWhere). */
export const tenantParams = (tenant: string): QueryParams => (tenant !== '' ? { tenant, tenantKey: TENANT_ATTRIBUTE } : {});

/** The parameters of otelWhere and eventsWhere. */
export const windowParams = (range: Range, tenant: string): QueryParams => ({ start: range.start.toString(), end: range.end.toString(), ...tenantParams(tenant) });

/** StatusCode of a span with status error, as ingest stores it (the Collector exporter's text). */
export const ERROR_STATUS = STATUS[Status_StatusCode.ERROR] ?? 'Error';
