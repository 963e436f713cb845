import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../../../src/ids/uuidv7.js';

describe('UUIDv7', () => {
  it('carries the time in its first 48 bits, version 7 and the RFC 9562 variant', () => {
    const id = uuidv7(0x0123_4567_89ab);
    expect(id).toMatch(/^01234567-89ab-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('sorts by creation time, and differs within one millisecond', () => {
    const ids = [1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000].map((t) => uuidv7(t));
    expect([...ids].sort()).toEqual(ids);
    expect(uuidv7(1_700_000_000_000)).not.toBe(uuidv7(1_700_000_000_000));
  });
});
