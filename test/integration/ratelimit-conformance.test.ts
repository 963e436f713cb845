/**
 * The configuration examples of envoyproxy/ratelimit's README (Examples 1-9), loaded unchanged
 * and checked against the behaviour the README states for them, through Envoy's RLS API.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitResponse_Code as Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { sharedClock, startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';

const EXAMPLES: Record<string, string> = {
  'example1.yaml': `domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit:
      unit: second
      requests_per_unit: 500

  - key: database
    value: default
    rate_limit:
      unit: second
      requests_per_unit: 500
`,
  'example2.yaml': `domain: messaging
descriptors:
  # Only allow 5 marketing messages a day
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit:
          unit: day
          requests_per_unit: 5

  # Only allow 100 messages a day to any unique phone number
  - key: to_number
    rate_limit:
      unit: day
      requests_per_unit: 100
`,
  'example3.yaml': `domain: edge_proxy_per_ip
descriptors:
  - key: remote_address
    rate_limit:
      unit: second
      requests_per_unit: 10

  # Black list IP
  - key: remote_address
    value: 50.0.0.5
    rate_limit:
      unit: second
      requests_per_unit: 0
`,
  'example4.yaml': `domain: example4
descriptors:
  - key: key
    value: value
    descriptors:
      - key: subkey
        rate_limit:
          requests_per_unit: 300
          unit: second
`,
  'example4-flat.yaml': `domain: example4_flat
descriptors:
  - key: key
    value: value
    rate_limit:
      requests_per_unit: 300
      unit: second
`,
  'example5.yaml': `domain: internal
descriptors:
  - key: ldap
    rate_limit:
      unlimited: true

  - key: azure
    rate_limit:
      unit: minute
      requests_per_unit: 100
`,
  'example6.yaml': `domain: example6
descriptors:
  - key: service
    descriptors:
      - key: user
        value: user-a
        rate_limit:
          requests_per_unit: 10
          unit: second
        shadow_mode: true
      - key: user
        value: user-b
        rate_limit:
          requests_per_unit: 20
          unit: second
`,
  'example7.yaml': `domain: example7
descriptors:
  - key: key_1
    value: value_1
    descriptors:
      - key: user
        value: bkthomps
        rate_limit:
          name: specific_limit
          requests_per_unit: 5
          unit: second
  - key: key_2
    value: value_2
    descriptors:
      - key: user
        value: bkthomps
        rate_limit:
          replaces:
            - name: specific_limit
          requests_per_unit: 10
          unit: second
`,
  'example8.yaml': `domain: example8
descriptors:
  - key: key1
    detailed_metric: true
    rate_limit:
      unit: minute
      requests_per_unit: 10
  - key: key1
    value: value1
    rate_limit:
      unit: minute
      requests_per_unit: 20
`,
  'example9.yaml': `domain: example9
descriptors:
  - key: key1
    value: value*
    rate_limit:
      unit: minute
      requests_per_unit: 20
`,
};

type Entry = [string, string];
const d = (...entries: Entry[]) => ({ entries: entries.map(([key, value]) => ({ key, value })) });

/** Every answer each port gave, in order: both runs must be the same. */
const answers: Record<Port, unknown[]> = { grpc: [], ratelimit: [] };
type Port = 'grpc' | 'ratelimit';

describe.each<Port>(['grpc', 'ratelimit'])('envoyproxy/ratelimit README examples (port %s)', (port) => {
  const dir = tempDir();
  let t: TestAgent;
  let c: AgentClient;
  beforeAll(async () => {
    const limits = join(dir.path, 'limits');
    mkdirSync(limits);
    for (const [name, text] of Object.entries(EXAMPLES)) writeFileSync(join(limits, name), text);
    // The buckets' clock stands still: per-second limits must not refill while a slow machine runs the calls.
    t = await startTestAgent({ ratelimit: { config_path: limits } }, { clock: sharedClock() });
    c = connect({ addr: port === 'grpc' ? t.grpcAddress : t.ratelimitAddress });
  });
  afterAll(async () => {
    c.close();
    await t.stop();
    dir.cleanup();
  });
  const record = <T>(reply: T): T => (answers[port].push(reply), reply);
  const check = async (domain: string, ...descriptors: ReturnType<typeof d>[]) => record(await c.unary(RateLimitService.method.shouldRateLimit, { domain, descriptors }));
  const limitOf = async (domain: string, ...entries: Entry[]) => (await check(domain, d(...entries))).statuses[0]?.currentLimit;
  const codes = async (n: number, domain: string, ...descriptors: ReturnType<typeof d>[]) => {
    const out: Code[] = [];
    for (let i = 0; i < n; i++) out.push((await check(domain, ...descriptors)).overallCode);
    return out;
  };

  it('Example 1: one key, two values, each its own 500/s limit; other values unlimited', async () => {
    expect(await limitOf('mongo_cps', ['database', 'users'])).toMatchObject({ requestsPerUnit: 500, unit: 1 });
    expect(await limitOf('mongo_cps', ['database', 'default'])).toMatchObject({ requestsPerUnit: 500, unit: 1 });
    expect(await limitOf('mongo_cps', ['database', 'other'])).toBeUndefined();
  });

  it('Example 2: a placeholder without a limit, a nested key-only limit per value, and all matching descriptors combined', async () => {
    expect(await limitOf('messaging', ['message_type', 'marketing'])).toBeUndefined();
    expect(await limitOf('messaging', ['message_type', 'marketing'], ['to_number', '2061111111'])).toMatchObject({ requestsPerUnit: 5, unit: 4 });
    expect(await limitOf('messaging', ['to_number', '2061111111'])).toMatchObject({ requestsPerUnit: 100, unit: 4 });
    // Each number gets its own 5 a day; a request over any descriptor's limit is over limit.
    const both = (n: string) => [d(['message_type', 'marketing'], ['to_number', n]), d(['to_number', n])];
    expect(await codes(6, 'messaging', ...both('2063333333'))).toEqual([Code.OK, Code.OK, Code.OK, Code.OK, Code.OK, Code.OVER_LIMIT]);
    expect((await check('messaging', ...both('2062222222'))).overallCode).toBe(Code.OK);
  });

  it('Example 3: the most specific match wins: 10/s for any IP, 0 (blocked) for 50.0.0.5', async () => {
    expect(await limitOf('edge_proxy_per_ip', ['remote_address', '50.0.0.1'])).toMatchObject({ requestsPerUnit: 10 });
    expect((await check('edge_proxy_per_ip', d(['remote_address', '50.0.0.5']))).overallCode).toBe(Code.OVER_LIMIT);
    expect(await codes(11, 'edge_proxy_per_ip', d(['remote_address', '50.0.0.9']))).toEqual([...Array<Code>(10).fill(Code.OK), Code.OVER_LIMIT]);
  });

  it('Example 3: an OVER_LIMIT status says 0 remaining (Envoy sends it as x-ratelimit-remaining), even with tokens left below hits_addend', async () => {
    const addend = async () => record(await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'edge_proxy_per_ip', descriptors: [d(['remote_address', '50.0.0.10'])], hitsAddend: 4 }));
    expect((await addend()).statuses[0]).toMatchObject({ code: Code.OK, limitRemaining: 6 });
    expect((await addend()).statuses[0]).toMatchObject({ code: Code.OK, limitRemaining: 2 });
    // 2 left, 4 asked: refused; the missing 2 tokens come back in 0.2 s, reported as a whole second.
    const over = await addend();
    expect(over.overallCode).toBe(Code.OVER_LIMIT);
    expect(over.statuses[0]).toMatchObject({ code: Code.OVER_LIMIT, currentLimit: { requestsPerUnit: 10, unit: 1 }, limitRemaining: 0, durationUntilReset: { seconds: 1n, nanos: 0 } });
    expect(over.responseHeadersToAdd.map((h) => [h.key, h.value])).toEqual([
      ['RateLimit-Policy', '"edge_proxy_per_ip.remote_address";q=10;w=1'],
      ['RateLimit', '"edge_proxy_per_ip.remote_address";r=0;t=1'],
    ]);
  });

  it('Example 4: a descriptor matches only configuration nested to the same depth', async () => {
    expect(await limitOf('example4_flat', ['key', 'value'], ['subkey', 'subvalue'])).toBeUndefined();
    expect(await limitOf('example4', ['key', 'value'], ['subkey', 'subvalue'])).toMatchObject({ requestsPerUnit: 300 });
  });

  it('Example 5: unlimited answers OK with MaxUint32 remaining, beside an ordinary limit', async () => {
    const res = await check('internal', d(['ldap', 'x']), d(['azure', 'y']));
    expect(res.statuses[0]).toMatchObject({ code: Code.OK, limitRemaining: 4_294_967_295 });
    expect(res.statuses[1]).toMatchObject({ code: Code.OK, currentLimit: { requestsPerUnit: 100, unit: 2 } });
  });

  it('Example 6: shadow mode never limits user-a (but counts the breach); user-b is limited at 20', async () => {
    const a = d(['service', 'auth-service'], ['user', 'user-a']);
    expect((await codes(15, 'example6', a)).every((x) => x === Code.OK)).toBe(true);
    expect(await (await fetch(`${t.adminUrl}/metrics`)).text()).toMatch(/heimdall_ratelimit_shadow_mode_total\{domain="example6",descriptor="example6\.service\.user_user-a"\} 5/);
    expect(await codes(21, 'example6', d(['service', 'auth-service'], ['user', 'user-b']))).toEqual([...Array<Code>(20).fill(Code.OK), Code.OVER_LIMIT]);
  });

  it('Example 7: when both match, the replacing 10/s rule applies and the replaced 5/s one is not touched', async () => {
    const one = d(['key_1', 'value_1'], ['user', 'bkthomps']);
    const two = d(['key_2', 'value_2'], ['user', 'bkthomps']);
    expect(await codes(10, 'example7', one, two)).toEqual(Array<Code>(10).fill(Code.OK));
    expect((await check('example7', one, two)).overallCode).toBe(Code.OVER_LIMIT);
    // The replaced rule's own bucket was not consumed: alone it still allows 5.
    expect(await codes(6, 'example7', one)).toEqual([...Array<Code>(5).fill(Code.OK), Code.OVER_LIMIT]);
  });

  it('Example 8: detailed_metric names the value in the metrics; limits work as usual', async () => {
    expect(await limitOf('example8', ['key1', 'unspecified_value'])).toMatchObject({ requestsPerUnit: 10, unit: 2 });
    expect(await limitOf('example8', ['key1', 'value1'])).toMatchObject({ requestsPerUnit: 20, unit: 2 });
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
    expect(metrics).toContain('descriptor="example8.key1|key1_unspecified_value"');
    expect(metrics).toContain('descriptor="example8.key1_value1"');
  });

  it('Example 9: a value ending in * matches every value with that prefix', async () => {
    expect(await limitOf('example9', ['key1', 'value_1'])).toMatchObject({ requestsPerUnit: 20, unit: 2 });
    expect(await limitOf('example9', ['key1', 'value_2'])).toMatchObject({ requestsPerUnit: 20 });
    expect(await limitOf('example9', ['key1', 'other'])).toBeUndefined();
  });
});

describe('both ports', () => {
  it('gave the same answers, call for call (4317 forwards to the worker that serves its own port)', () => {
    expect(answers.grpc.length).toBeGreaterThan(80);
    expect(answers.ratelimit).toEqual(answers.grpc);
  });

  it('share one set of buckets: hits on either port (and on /ratelimit/json) count on the others', async () => {
    const dir = tempDir();
    const limits = join(dir.path, 'limits');
    mkdirSync(limits);
    writeFileSync(join(limits, 'example3.yaml'), EXAMPLES['example3.yaml'] ?? '');
    const t = await startTestAgent({ ratelimit: { config_path: limits } }, { clock: sharedClock() });
    const clients = [connect({ addr: t.grpcAddress }), connect({ addr: t.ratelimitAddress })];
    try {
      const request = { domain: 'edge_proxy_per_ip', descriptors: [d(['remote_address', '198.51.100.1'])] };
      const codes: Code[] = [];
      // 10 a second, the clock stands still: calls alternate between 4317, the worker's port and the JSON route.
      for (let i = 0; i < 9; i++) {
        if (i % 3 === 2) {
          const res = await fetch(`${t.adminUrl}/ratelimit/json`, { method: 'POST', body: JSON.stringify(request) });
          codes.push(res.status === 200 ? Code.OK : Code.OVER_LIMIT);
        } else codes.push((await (clients[i % 3] as AgentClient).unary(RateLimitService.method.shouldRateLimit, request)).overallCode);
      }
      const tenth = await (clients[1] as AgentClient).unary(RateLimitService.method.shouldRateLimit, request);
      expect(tenth.statuses[0]).toMatchObject({ code: Code.OK, limitRemaining: 0 });
      codes.push((await (clients[0] as AgentClient).unary(RateLimitService.method.shouldRateLimit, request)).overallCode);
      expect(codes).toEqual([...Array<Code>(9).fill(Code.OK), Code.OVER_LIMIT]);
      expect((await fetch(`${t.adminUrl}/ratelimit/json`, { method: 'POST', body: JSON.stringify(request) })).status).toBe(429);
    } finally {
      for (const c of clients) c.close();
      await t.stop();
      dir.cleanup();
    }
  });
});
