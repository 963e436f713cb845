import { describe, expect, it } from 'vitest';
import { StorageError, toStorageError } from '../../../src/storage/errors.js';
import { ttlClause, ttlExpression } from '../../../src/storage/migrations/context.js';

describe('storage errors', () => {
  it('classifies network failures and overload codes as retryable, SQL errors as not', () => {
    expect(toStorageError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }), 'ping').retryable).toBe(true);
    expect(toStorageError(new Error('socket hang up'), 'insert').retryable).toBe(true);
    expect(toStorageError(new Error('Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)'), 'insert')).toMatchObject({ retryable: true, code: 252 });
    expect(toStorageError(new Error('Code: 62. DB::Exception: Syntax error'), 'query')).toMatchObject({ retryable: false, code: 62 });
    // A full disk passes once space is freed: the embedded engine's own words, and a server's.
    expect(toStorageError(new Error('Code: 243. DB::Exception: Cannot reserve 10.30 MiB, not enough space. (NOT_ENOUGH_SPACE)'), 'insert')).toMatchObject({ retryable: true, code: 243 });
    expect(toStorageError(new Error('Code: 74. DB::ErrnoException: Cannot write to file /d/x.bin: No space left on device. (CANNOT_WRITE_TO_FILE_DESCRIPTOR)'), 'insert')).toMatchObject({ retryable: true, code: 74 });
    expect(toStorageError(Object.assign(new Error('x'), { clickhouseCode: 60 }), 'query')).toMatchObject({ retryable: false, code: 60 });
    const same = new StorageError('kept', { retryable: true });
    expect(toStorageError(same, 'again')).toBe(same);
    expect(toStorageError('plain', 'ping').message).toBe('ping: plain');
  });

  it('renders TTL clauses in whole seconds, none for 0', () => {
    expect(ttlExpression('toDateTime(Timestamp)', 90 * 86_400_000)).toBe('toDateTime(Timestamp) + toIntervalSecond(7776000)');
    expect(ttlExpression('toDateTime(Timestamp)', 10)).toBe('toDateTime(Timestamp) + toIntervalSecond(1)');
    expect(ttlClause('x', 0)).toBe('');
  });
});
