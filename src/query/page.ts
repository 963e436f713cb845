import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { invalidFields } from '../errors/agent-error.js';
import { decodeCursor, encodeCursor, filterHash } from '../paging/cursor.js';
import type { TableWithRowId } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import type { Query, QueryBudget } from './budget.js';

const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

function pageSize(n: number): number {
  if (n > MAX_PAGE) throw invalidFields([{ field: 'page_size', description: `at most ${MAX_PAGE}` }]);
  return n === 0 ? DEFAULT_PAGE : n;
}

/** A listing's table: what is read, and how a row's id (its page key after the time) is read back. */
export interface PagedTable<T> {
  spec: TableWithRowId;
  columns: string;
  idOf: (row: T) => string;
}

/** A listing request's paging fields. */
export interface PageRequest {
  startTime?: Timestamp | undefined;
  endTime?: Timestamp | undefined;
  pageSize: number;
  pageToken: string;
}

/** A filter of a listing: its SQL, its parameters, and whether the request asks for it. */
export type PageFilter = readonly [sql: string, params: QueryParams, applies: boolean];

/**
 * One page of a newest-first listing: the filters that apply (SQL with its parameters), keyset
 * paging on (Timestamp, id) after the cursor's row, and the time range pinned by the first page
 * (`defaultWindowMs` wide without start_time; at most query.max_window). The filters (not the time
 * range) are hashed into the token, which is refused with others.
 */
export async function listPage<T extends { ts: string }>(
  budget: Pick<QueryBudget, 'checked' | 'window'>,
  defaultWindowMs: number,
  query: Query,
  table: PagedTable<T>,
  req: PageRequest,
  filters: readonly PageFilter[],
): Promise<{ rows: T[]; next: string }> {
  const applied = filters.filter(([, , applies]) => applies);
  const hash = filterHash(applied.map(([sql, params]) => [sql, params]));
  const cursor = req.pageToken ? decodeCursor(req.pageToken, hash) : undefined;
  const range = cursor ? budget.checked({ start: BigInt(cursor.start), end: BigInt(cursor.end) }, 'page_token') : budget.window(req, defaultWindowMs);
  const limit = pageSize(req.pageSize);
  const where = ['Timestamp >= fromUnixTimestamp64Nano({start:Int64})', 'Timestamp < fromUnixTimestamp64Nano({end:Int64})', ...applied.map(([sql]) => sql)];
  const params: QueryParams = { start: range.start.toString(), end: range.end.toString(), limit: limit + 1 };
  for (const [, p] of applied) Object.assign(params, p);
  if (cursor) {
    where.push(`(Timestamp, ${table.spec.rowId.expr}) < (fromUnixTimestamp64Nano({lastTime:Int64}), {lastId:${table.spec.rowId.type}})`);
    params.lastTime = cursor.lastTime;
    params.lastId = cursor.lastId;
  }
  const rows = await query<T>(`SELECT ${table.columns} FROM ${table.spec.name} WHERE ${where.join(' AND ')} ORDER BY Timestamp DESC, ${table.spec.rowId.expr} DESC LIMIT {limit:UInt32}`, params);
  const kept = rows.slice(0, limit);
  const last = kept[kept.length - 1];
  const next = rows.length > limit && last ? encodeCursor({ start: range.start.toString(), end: range.end.toString(), lastTime: last.ts, lastId: table.idOf(last), filters: hash }) : '';
  return { rows: kept, next };
}
