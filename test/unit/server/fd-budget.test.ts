import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { fitConnectionCaps, fitListeners, openFileLimit } from '../../../src/server/fd-budget.js';
import { silentLogger } from '../../support/temp.js';

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

  it('keeps the caps when they fit the limit minus the reserve, lowers them in proportion when not, and their reserves with them', () => {
    const caps = { grpc: { max: 1024, reserved: 8 }, otlp_http: { max: 1024, reserved: 8 }, admin: { max: 128, reserved: 16 } };
    expect(fitConnectionCaps(caps, 20_000, 1024)).toEqual({ caps, lowered: false });
    expect(fitConnectionCaps(caps, undefined, 1024)).toEqual({ caps, lowered: false });
    const fitted = fitConnectionCaps(caps, 2048, 1024);
    expect(fitted.lowered).toBe(true);
    expect(fitted.caps).toEqual({ grpc: { max: 481, reserved: 4 }, otlp_http: { max: 481, reserved: 4 }, admin: { max: 60, reserved: 8 } });
    expect(fitted.caps.grpc.max + fitted.caps.otlp_http.max + fitted.caps.admin.max).toBeLessThanOrEqual(1024);
    // However few are left, every listener keeps a few, and shared slots besides its reserve.
    expect(fitConnectionCaps(caps, 1024, 1024).caps).toEqual({ grpc: { max: 16, reserved: 1 }, otlp_http: { max: 16, reserved: 1 }, admin: { max: 16, reserved: 2 } });
    expect(fitConnectionCaps({ admin: { max: 20, reserved: 19 } }, 100, 90).caps).toEqual({ admin: { max: 16, reserved: 15 } });
  });
});

describe('fitListeners', () => {
  it('gives each listener its slice, its caps fitted to the open-file limit, and warns only when it lowered them', () => {
    const server = validateConfig({}).server;
    const warnings: string[] = [];
    const logger = { ...silentLogger(), warn: (_: unknown, msg: string) => void warnings.push(msg) } as unknown as ReturnType<typeof silentLogger>;
    expect(fitListeners(server, logger, 100_000)).toEqual({ grpc: server.grpc, otlp_http: server.otlp_http, admin: server.admin, ratelimit: server.ratelimit });
    expect(warnings).toEqual([]);
    // The rate-limit worker's listener counts too: 3200 connections into 1024 descriptors.
    const fitted = fitListeners(server, logger, 2048);
    expect(fitted.grpc).toEqual({ ...server.grpc, max_connections: 327, reserved_connections: 3 });
    expect(fitted.otlp_http).toEqual({ ...server.otlp_http, max_connections: 327, reserved_connections: 3 });
    expect(fitted.admin).toEqual({ ...server.admin, max_connections: 40, reserved_connections: 5 });
    expect(fitted.ratelimit).toEqual({ ...server.ratelimit, max_connections: 327, reserved_connections: 3 });
    // Disabled, it takes no share.
    const without = fitListeners(validateConfig({ server: { ratelimit: { enabled: false } } }).server, logger, 2048);
    expect(without.grpc).toEqual({ ...server.grpc, max_connections: 481, reserved_connections: 4 });
    expect(without.admin).toEqual({ ...server.admin, max_connections: 60, reserved_connections: 8 });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('lowered to fit the open-file limit');
  });
});
