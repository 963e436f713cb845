import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, filterHash, type Cursor } from '../../../src/paging/cursor.js';
import { AgentError, type ErrorCode } from '../../../src/errors/agent-error.js';

const cursor: Cursor = { start: '1700000000000000000', end: '1700003600000000000', lastTime: '1700000001000000001', lastId: 'row-7', filters: filterHash({ service: 'api' }) };

/** The error code and message a call throws, or undefined when it does not throw. */
function refusal(f: () => unknown): { code: ErrorCode; message: string } | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return { code: (err as AgentError).code, message: (err as AgentError).message };
  }
}

describe('page cursors', () => {
  it('hash filters stably, bigints included, and tell different filters apart', () => {
    expect(filterHash({ a: 1, b: 2n })).toBe(filterHash({ a: 1, b: 2n }));
    expect(filterHash({ a: 1, b: 2n })).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(filterHash({ a: 1, b: 2n })).not.toBe(filterHash({ a: 1, b: 3n }));
  });

  it('round-trip through an opaque base64url token', () => {
    const token = encodeCursor(cursor);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(token, cursor.filters)).toEqual(cursor);
  });

  it('refuse a token made for other filters', () => {
    expect(refusal(() => decodeCursor(encodeCursor(cursor), filterHash({ service: 'db' })))).toEqual({
      code: 'invalid_argument',
      message: 'page_token: made for different filters; repeat the request that returned it, changing only page_token',
    });
  });

  it('refuse what is not a token of this API', () => {
    const forged = (parts: unknown[]) => Buffer.from(JSON.stringify(parts)).toString('base64url');
    const notOurs = { code: 'invalid_argument', message: 'page_token: not a token from this API' };
    const valid = [1, cursor.start, cursor.end, cursor.lastTime, cursor.lastId, cursor.filters];
    expect(refusal(() => decodeCursor(forged(valid), cursor.filters))).toBeUndefined();
    for (const token of [
      'not base64 json',
      '',
      forged([2, ...valid.slice(1)]), // another version
      forged(valid.slice(0, 5)), // too short
      forged([1, '-1', cursor.end, cursor.lastTime, cursor.lastId, cursor.filters]), // a negative time
      forged([1, cursor.start, '9223372036854775808', cursor.lastTime, cursor.lastId, cursor.filters]), // past Int64
      forged([1, cursor.start, cursor.end, 5, cursor.lastId, cursor.filters]), // a number, not text
      forged([1, cursor.start, cursor.end, cursor.lastTime, 'x'.repeat(129), cursor.filters]), // an id too long
    ]) {
      expect(refusal(() => decodeCursor(token, cursor.filters)), token).toEqual(notOurs);
    }
    expect(decodeCursor(forged([1, cursor.start, '9223372036854775807', cursor.lastTime, 'x'.repeat(128), cursor.filters]), cursor.filters).end).toBe('9223372036854775807');
  });
});
