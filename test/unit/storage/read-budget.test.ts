import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { asGrpcError } from '../../../src/server/errors.js';
import { StorageError } from '../../../src/storage/errors.js';
import { budgetSettings, limitHit, limitRefusal, MAX_RESULT_ROWS } from '../../../src/storage/read-budget.js';

/** A refusal as the gRPC transport answers it (it is a transport-neutral AgentError). */
function onTheWire(err: AgentError): unknown {
  expect(err).toBeInstanceOf(AgentError);
  return asGrpcError(err);
}

const limits = { ...configSchema.parse({}).query, timeout: 2_500, max_rows_to_read: 1_000, max_bytes_to_read: 4_096, max_memory: 64 * 1024 * 1024 };

describe('storage read budgets', () => {
  it('always bound the time, and the memory, reads and result rows when asked', () => {
    expect(budgetSettings(limits)).toEqual({ max_execution_time: 2.5, timeout_overflow_mode: 'throw', max_memory_usage: 64 * 1024 * 1024 });
    expect(budgetSettings(limits, { memory: false })).toEqual({ max_execution_time: 2.5, timeout_overflow_mode: 'throw' });
    expect(budgetSettings(limits, { reads: true, maxResultRows: MAX_RESULT_ROWS })).toEqual({
      max_execution_time: 2.5,
      timeout_overflow_mode: 'throw',
      max_memory_usage: 64 * 1024 * 1024,
      max_rows_to_read: 1_000,
      max_bytes_to_read: 4_096,
      read_overflow_mode: 'throw',
      max_result_rows: MAX_RESULT_ROWS,
      result_overflow_mode: 'throw',
    });
  });

  it('name the budget a storage error stopped at, and nothing for other errors', () => {
    const err = (code: number | undefined) => new StorageError('stopped', { retryable: false, ...(code === undefined ? {} : { code }) });
    expect([159, 160, 158, 307, 241, 396].map((code) => limitHit(err(code)))).toEqual(['timeout', 'timeout', 'max_rows_to_read', 'max_bytes_to_read', 'max_memory', 'max_result_rows']);
    expect(limitHit(err(62))).toBeUndefined();
    expect(limitHit(err(undefined))).toBeUndefined();
    expect(limitHit(new Error('not from storage'))).toBeUndefined();
  });

  it('refuse with DEADLINE_EXCEEDED for time and RESOURCE_EXHAUSTED otherwise, naming the setting and its value', () => {
    expect(onTheWire(limitRefusal('timeout', limits))).toMatchObject({ code: status.DEADLINE_EXCEEDED, message: expect.stringMatching(/^query\.timeout: .*2500ms/) as unknown });
    expect(onTheWire(limitRefusal('max_memory', limits))).toMatchObject({ code: status.RESOURCE_EXHAUSTED, message: expect.stringMatching(/^query\.max_memory: .*64MiB/) as unknown });
    expect(onTheWire(limitRefusal('max_rows_to_read', limits))).toMatchObject({ code: status.RESOURCE_EXHAUSTED, message: expect.stringContaining('query.max_rows_to_read: a storage query would read more than 1000 rows') as unknown });
    expect(onTheWire(limitRefusal('max_bytes_to_read', limits))).toMatchObject({ code: status.RESOURCE_EXHAUSTED, message: expect.stringContaining('more than 4096 bytes') as unknown });
    expect(onTheWire(limitRefusal('max_result_rows', limits))).toMatchObject({ code: status.RESOURCE_EXHAUSTED, message: expect.stringContaining(`more than ${MAX_RESULT_ROWS} rows`) as unknown });
  });
});
