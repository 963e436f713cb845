/** The main thread's handle on a real rate-limit worker thread (started from the TypeScript sources), with the limits the main thread loads. */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../../src/config/load.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema } from '../../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { SecurityMode } from '../../../../src/gen/heimdall/v1/security_pb.js';
import { createHealthRegistry } from '../../../../src/health/registry.js';
import { loadRateLimitConfig } from '../../../../src/ratelimit/config.js';
import type { OverLimitRecord } from '../../../../src/ratelimit/over-limit.js';
import { createWorkerClient, type WorkerClient } from '../../../../src/ratelimit/worker/client.js';
import { silentLogger, tempDir } from '../../../support/temp.js';
import { until } from '../../../support/wait.js';

const request = (value: string) => toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, { domain: 'api', descriptors: [{ entries: [{ key: 'path', value }] }] }));
const code = (bytes: Uint8Array) => fromBinary(RateLimitResponseSchema, bytes).overallCode;

describe('rate-limit worker client', () => {
  const dir = tempDir();
  const health = createHealthRegistry();
  const records: OverLimitRecord[] = [];
  let client: WorkerClient;
  let served = 0;
  const limitsFile = (perDay: number) => {
    writeFileSync(join(dir.path, 'api.yaml'), `domain: api\ndescriptors:\n  - key: path\n    rate_limit: { unit: day, requests_per_unit: ${perDay} }\n`);
    return loadRateLimitConfig(join(dir.path, 'api.yaml'));
  };
  beforeAll(async () => {
    const limits = limitsFile(1);
    const config = validateConfig({ ratelimit: { over_limit_window: '1s' }, server: { ratelimit: { enabled: false } } });
    const reporter = health.register('ratelimit');
    client = createWorkerClient({
      init: () => ({ ratelimit: config.ratelimit, listener: config.server.ratelimit, metrics: config.telemetry.metrics, logLevel: 'info', clock: undefined, tokens: [], security: { mode: SecurityMode.NORMAL, blocks: [] }, limits }),
      maxForwarded: 2,
      reporters: new Map([['ratelimit', reporter]]),
      overLimit: (r) => records.push(...r),
      onServing: () => void (served += 1, reporter.set('ready')),
      logger: silentLogger(),
    });
    client.prepare(); // as the agent does: the thread loads before start, its listener binds at start
    await client.start();
  });
  afterAll(async () => {
    await client.shutdown(1_000);
    dir.cleanup();
  });

  it('forwards checks (bytes in, encoded reply out), relays health and over-limit records, reads the worker registry', async () => {
    expect(client.port).toBe(0); // server.ratelimit.enabled: false
    expect(code(await client.answer(request('/a')))).toBe(RateLimitResponse_Code.OK);
    expect(code(await client.answer(request('/a')))).toBe(RateLimitResponse_Code.OVER_LIMIT);
    await expect(client.answer(new Uint8Array([0xff, 0xff]))).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(health.component('ratelimit')?.state).toBe('ready');
    await until(() => records.length > 0, 10_000, 'the window flushed');
    expect(records).toEqual([{ domain: 'api', descriptor: 'api.path', entity: 'path=/a', hits: 1 }]);
    const families = await client.metrics();
    expect(families.find((f) => f.name === 'heimdall_ratelimit_total_hits_total')?.values).toEqual([expect.objectContaining({ value: 2 })]);
  });

  it('refuses past max_forwarded with RESOURCE_EXHAUSTED', async () => {
    const calls = [client.answer(request('/b')), client.answer(request('/c')), client.answer(request('/d'))];
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'resource_exhausted' });
  });

  it('answers UNAVAILABLE while a dead worker is replaced, reports it, and serves again from a new one with full buckets', async () => {
    const pending = client.answer(request('/e'));
    await client.terminate();
    await expect(client.answer(request('/e'))).rejects.toMatchObject({ code: 'unavailable' });
    await pending.catch((err: unknown) => expect(err).toMatchObject({ code: 'unavailable' }));
    expect(health.component('ratelimit')).toMatchObject({ state: 'degraded' });
    await until(async () => (await client.answer(request('/a')).catch(() => undefined)) !== undefined, 20_000, 'a new worker');
    // /a was over its limit in the old worker; the new one started full, and took 1 just now.
    expect(code(await client.answer(request('/a')))).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(health.component('ratelimit')?.state).toBe('ready');
    expect(served).toBe(2);
  });

  it('checks against the limits the main thread hands over, from the next check on', async () => {
    expect(code(await client.answer(request('/f')))).toBe(RateLimitResponse_Code.OK);
    expect(code(await client.answer(request('/f')))).toBe(RateLimitResponse_Code.OVER_LIMIT);
    client.post({ t: 'limits', limits: limitsFile(1_000) });
    await until(async () => code(await client.answer(request('/g'))) === RateLimitResponse_Code.OK && code(await client.answer(request('/g'))) === RateLimitResponse_Code.OK, 5_000, 'the new limits');
  });
});
