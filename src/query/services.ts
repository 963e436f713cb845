import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ListServicesRequest, ListServicesResponseSchema, ServiceOperationsSchema } from '../gen/heimdall/v1/query_pb.js';
import { TRACES } from '../storage/tables.js';
import { timestamp } from '../time/range.js';
import type { Query, Range } from './budget.js';
import { boundedCount } from './bounds.js';
import { ERROR_STATUS, otelWhere, windowParams } from './sql.js';

/** Services and operations per service listed when the request says 0, and at most. */
const DEFAULT_LIST = 100;
const MAX_LIST = 1000;

interface OperationRow {
  service: string;
  name: string;
  spans: string;
  errors: string;
  service_spans: string;
  service_errors: string;
  op_rank: string;
  service_rank: string;
}

/**
 * ListServices over `range` for `tenant` (empty: every tenant): the services with the most spans
 * (at most max_services), each with its operations with the most spans (at most max_operations),
 * by name. One query ranks them; it returns one row past each limit, which says whether there was more.
 */
export async function listServices(query: Query, range: Range, tenant: string, req: ListServicesRequest): Promise<MessageInitShape<typeof ListServicesResponseSchema>> {
  const maxServices = boundedCount(req.maxServices, 'max_services', DEFAULT_LIST, MAX_LIST);
  const maxOperations = boundedCount(req.maxOperations, 'max_operations', DEFAULT_LIST, MAX_LIST);
  const rows = await query<OperationRow>(
    `SELECT service, name, spans, errors, service_spans, service_errors, op_rank, service_rank FROM (
       SELECT *, row_number() OVER (PARTITION BY service ORDER BY spans DESC, name) AS op_rank, dense_rank() OVER (ORDER BY service_spans DESC, service) AS service_rank
       FROM (
         SELECT ServiceName AS service, SpanName AS name, count() AS spans, countIf(StatusCode = {error:String}) AS errors,
           sum(count()) OVER (PARTITION BY ServiceName) AS service_spans, sum(countIf(StatusCode = {error:String})) OVER (PARTITION BY ServiceName) AS service_errors
         FROM ${TRACES.name} WHERE ${otelWhere(tenant)} GROUP BY ServiceName, SpanName
       )
     )
     WHERE op_rank <= {maxOperations:UInt32} + 1 AND service_rank <= {maxServices:UInt32} + 1
     ORDER BY service, name`,
    { ...windowParams(range, tenant), error: ERROR_STATUS, maxServices, maxOperations },
  );
  const services = new Map<string, MessageInitShape<typeof ServiceOperationsSchema> & { operations: Array<{ spanName: string; spanCount: bigint; errorCount: bigint }> }>();
  let truncated = false;
  for (const r of rows) {
    if (Number(r.service_rank) > maxServices) {
      truncated = true;
      continue;
    }
    let s = services.get(r.service);
    if (!s) services.set(r.service, (s = { serviceName: r.service, spanCount: BigInt(r.service_spans), errorCount: BigInt(r.service_errors), operations: [], operationsTruncated: false }));
    if (Number(r.op_rank) > maxOperations) s.operationsTruncated = true;
    else s.operations.push({ spanName: r.name, spanCount: BigInt(r.spans), errorCount: BigInt(r.errors) });
  }
  return { startTime: timestamp(range.start), endTime: timestamp(range.end), services: [...services.values()], truncated };
}
