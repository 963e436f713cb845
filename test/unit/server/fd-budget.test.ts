import { describe, expect, it } from 'vitest';
import { fitConnectionCaps, openFileLimit } from '../../../src/server/fd-budget.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
`;

describe('file descriptor budget', () => {
  it('reads the soft open-file limit from /proc/self/limits; none when unlimited or unreadable', () => {
    expect(openFileLimit(() => LIMITS)).toBe(20000);
    expect(openFileLimit(() => LIMITS.replace('20000                20000', 'unlimited            unlimited'))).toBeUndefined();
    expect(openFileLimit(() => {
      throw new Error('ENOENT');
    })).toBeUndefined();
    // This process (Linux): Node raised the soft limit, and it is a number.
    expect(openFileLimit()).toBeGreaterThan(0);
  });

  it('keeps the caps when they fit the limit minus the reserve, lowers them in proportion when not', () => {
    const caps = { grpc: 1024, otlp_http: 1024, admin: 128 };
    expect(fitConnectionCaps(caps, 20_000, 1024)).toEqual({ caps, lowered: false });
    expect(fitConnectionCaps(caps, undefined, 1024)).toEqual({ caps, lowered: false });
    const fitted = fitConnectionCaps(caps, 2048, 1024);
    expect(fitted.lowered).toBe(true);
    expect(fitted.caps).toEqual({ grpc: 481, otlp_http: 481, admin: 60 });
    expect(fitted.caps.grpc + fitted.caps.otlp_http + fitted.caps.admin).toBeLessThanOrEqual(1024);
    // However few are left, every listener keeps a few.
    expect(fitConnectionCaps(caps, 1024, 1024).caps).toEqual({ grpc: 16, otlp_http: 16, admin: 16 });
  });
});
