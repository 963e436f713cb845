import { describe, expect, it } from 'vitest';
import { nanosToDateTime64 } from '../../../src/time/datetime64.js';

describe('DateTime64(9) text', () => {
  it('formats nanosecond timestamps exactly: ten-digit seconds, nine-digit fraction, clamped at 2262', () => {
    expect(nanosToDateTime64(1_700_000_000_000_000_001n)).toBe('1700000000.000000001');
    expect(nanosToDateTime64(18_446_744_073_709_551_615n)).toBe('9223372036.854775807');
    expect(nanosToDateTime64(0n)).toBe('0000000000.000000000');
    expect(nanosToDateTime64(999_999_999_500_000_000n)).toBe('0999999999.500000000');
  });
});
