/**
 * The over-limit reporter under hostile requests (in-process agents, real RLS clients): its keys
 * per window are capped whatever part of them requests control (entity values, limit overrides,
 * domains refused by the security layer), and long texts are shortened.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { startTestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

interface Report {
  domain: string;
  descriptor: string;
  entity: string;
  hits: number;
}

describe('over-limit reports: keys capped per window, texts shortened', () => {
  const dirs = [tempDir(), tempDir(), tempDir()];
  const [limits, first, second] = dirs as [ReturnType<typeof tempDir>, ReturnType<typeof tempDir>, ReturnType<typeof tempDir>];
  writeFileSync(join(limits.path, 'mem.yaml'), 'domain: mem\ndescriptors:\n  - key: blocked\n    rate_limit: { unit: day, requests_per_unit: 0 }\n');
  afterAll(() => {
    for (const d of dirs) d.cleanup();
  });

  /**
   * Runs `send` against an agent on `data` whose reporter keeps 3 keys in a window of 10 minutes,
   * stops it (which writes the one window), and reads the reports back with a second agent on the same data.
   */
  const oneWindow = async (data: string, security: Record<string, unknown>, send: (check: (domain: string, descriptor: Record<string, unknown>) => Promise<void>) => Promise<void>): Promise<Report[]> => {
    const ratelimit = { config_path: limits.path, over_limit_window: '10m', over_limit_max_keys: 3, security };
    const t = await startTestAgent({ storage: { embedded: { path: data } }, ratelimit, jobs: { system_check: { enabled: false } } });
    const c = connect({ addr: t.grpcAddress });
    await send(async (domain, descriptor) => {
      const reply = await c.unary(RateLimitService.method.shouldRateLimit, { domain, descriptors: [descriptor] });
      expect(reply.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    });
    c.close();
    await t.stop();
    const r = await startTestAgent({ storage: { embedded: { path: data } }, ratelimit: { config_path: limits.path }, jobs: { system_check: { enabled: false } } });
    const q = connect({ addr: r.grpcAddress });
    try {
      const events = await until(async () => (await q.unary(QueryService.method.listEvents, { eventTypes: ['ratelimit.over_limit'], pageSize: 1000 }).catch(() => undefined))?.events, 15_000, 'the reports');
      return events.map((e) => e.payload as unknown as Report);
    } finally {
      q.close();
      await r.stop();
    }
  };

  it('entity values and limit overrides from requests: at most max keys and one overflow key a window', async () => {
    const reports = await oneWindow(first.path, {}, async (check) => {
      for (const v of ['a', 'b', 'c', 'd', 'e']) await check('mem', { entries: [{ key: 'blocked', value: v }] });
      // A request's own limit (0 a second) names its values in the descriptor: a new key each.
      for (let i = 0; i < 20; i++) await check('mem', { entries: [{ key: 'user', value: `u${i}` }], limit: { requestsPerUnit: 0, unit: 1 } });
    });
    expect(reports).toHaveLength(4);
    expect(reports.filter((r) => r.entity !== '__overflow__').map((r) => r.entity).sort()).toEqual(['blocked=a', 'blocked=b', 'blocked=c']);
    expect(reports.find((r) => r.entity === '__overflow__')).toMatchObject({ domain: '__overflow__', descriptor: '__overflow__', hits: 22 });
  }, 120_000);

  it('domains refused by the security layer (any text a request sends): shortened, and capped', async () => {
    const reports = await oneWindow(second.path, { mode: 'lockdown' }, async (check) => {
      for (let i = 0; i < 10; i++) await check(`${i}-${'d'.repeat(1_000)}`, { entries: [{ key: 'blocked', value: 'x' }] });
    });
    expect(reports).toHaveLength(4);
    for (const r of reports) expect(r.domain.length).toBeLessThanOrEqual(64);
    expect(reports.filter((r) => r.domain !== '__overflow__').every((r) => r.descriptor === 'security:lockdown' && /^\d-d{30}…#[\w-]{22}$/.test(r.domain))).toBe(true);
    expect(reports.find((r) => r.domain === '__overflow__')?.hits).toBe(7);
  }, 120_000);
});
