/** Limits shared through a real redis-server: two agent processes, one limit; Redis stopping and coming back. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { RateLimitResponse_Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { startAgentProcess, untilReady } from '../support/agent-process.js';
import { haveBinary } from '../support/binaries.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';
import { tempDir } from '../support/temp.js';

const LIMITS = `
domain: shared
descriptors:
  - key: user
    rate_limit: { unit: hour, requests_per_unit: 5, backend: redis }
  - key: local_only
    rate_limit: { unit: hour, requests_per_unit: 5 }
`;

const TOKENS = { adminA: 'admin-a-token-000000001', adminB: 'admin-b-token-000000001', envoy: 'envoy-token-00000000001' };

/** Starts an agent process; resolves with its gRPC address and its rate-limit worker's. */
async function agent(dir: string, name: string, redisTarget: string, failureMode: 'allow' | 'deny'): Promise<{ child: ChildProcess; addr: string; rlAddr: string; metrics: () => Promise<string> }> {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'server: { grpc: { address: "127.0.0.1:0" }, otlp_http: { address: "127.0.0.1:0" }, admin: { address: "127.0.0.1:0" }, ratelimit: { address: "127.0.0.1:0" } }',
      `storage: { embedded: { path: "${join(dir, `${name}-data`)}" } }`,
      `ratelimit: { config_path: "${join(dir, 'limits')}", redis: { ${redisTarget}, timeout: 250ms, failure_mode: ${failureMode}, breaker: { failures: 3, cooldown: 300ms } } }`,
      `auth: { enabled: true, tokens: [{ name: admin-a, token: ${TOKENS.adminA}, scopes: [admin] }, { name: admin-b, token: ${TOKENS.adminB}, scopes: [admin] }, { name: envoy, token: ${TOKENS.envoy}, scopes: [ratelimit] }] }`,
      'shutdown: { drain: 0s }',
    ].join('\n'),
  );
  const started = await startAgentProcess(config);
  // Security changes are saved to storage: wait for it (seconds on a loaded machine).
  await untilReady(started);
  const { child, ports } = started;
  return { child, addr: `127.0.0.1:${ports.grpc}`, rlAddr: `127.0.0.1:${ports.ratelimit}`, metrics: async () => (await fetch(`http://127.0.0.1:${ports.admin}/metrics`)).text() };
}

describe.runIf(haveBinary('redis-server'))('rate limits shared through Redis', () => {
  const dir = tempDir();
  let redis: TestRedis;
  let a: Awaited<ReturnType<typeof agent>>;
  let b: Awaited<ReturnType<typeof agent>>;
  let ca: AgentClient;
  let cb: AgentClient;
  beforeAll(async () => {
    redis = await startRedis();
    const limits = join(dir.path, 'limits');
    mkdirSync(limits);
    writeFileSync(join(limits, 'shared.yaml'), LIMITS);
    [a, b] = await Promise.all([agent(dir.path, 'a', `url: "${redis.url}"`, 'allow'), agent(dir.path, 'b', `url: "${redis.url}"`, 'deny')]);
    ca = connect({ addr: a.addr, token: TOKENS.envoy });
    // Agent b is asked on its rate-limit worker's own port: the worker holds the Redis client, and
    // the security state another agent shares through Redis reaches it through b's main thread.
    cb = connect({ addr: b.rlAddr, token: TOKENS.envoy });
  }, 60_000);
  afterAll(async () => {
    ca.close();
    cb.close();
    // Wait for both agents to exit before their data directories go.
    await Promise.all([a, b].map((x) => new Promise((resolve) => (x.child.exitCode !== null ? resolve(undefined) : (x.child.once('exit', resolve), x.child.kill('SIGTERM'))))));
    await redis.stop();
    dir.cleanup();
  });

  const check = (c: AgentClient, key: string, value: string) => c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shared', descriptors: [{ entries: [{ key, value }] }] });
  const codes = async (key: string, value: string, n: number) => {
    const out: RateLimitResponse_Code[] = [];
    for (let i = 0; i < n; i++) out.push((await check(i % 2 === 0 ? ca : cb, key, value)).overallCode);
    return out;
  };

  it('enforces one limit across two agent processes', async () => {
    const got = await codes('user', 'u1', 8);
    expect(got.filter((c) => c === RateLimitResponse_Code.OK)).toHaveLength(5);
    expect(got.slice(5)).toEqual([RateLimitResponse_Code.OVER_LIMIT, RateLimitResponse_Code.OVER_LIMIT, RateLimitResponse_Code.OVER_LIMIT]);
    // A local limit is per agent: each process has its own 5.
    const local = await codes('local_only', 'x', 12);
    expect(local.filter((c) => c === RateLimitResponse_Code.OK)).toHaveLength(10);
  });

  it('refuses with 0 remaining and the time until the request could pass, from Redis as from local buckets', async () => {
    const take = (hitsAddend: number) => ca.unary(RateLimitService.method.shouldRateLimit, { domain: 'shared', hitsAddend, descriptors: [{ entries: [{ key: 'user', value: 'addend' }] }] });
    expect((await take(2)).statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OK, limitRemaining: 3 });
    // 3 left, 4 asked: refused; one token (one per 720 s) is missing, three for a full bucket (2,160 s).
    for (const over of [await take(4), await take(4)]) {
      expect(over.statuses[0]).toMatchObject({ code: RateLimitResponse_Code.OVER_LIMIT, limitRemaining: 0, durationUntilReset: { nanos: 0 } });
      const seconds = Number(over.statuses[0]?.durationUntilReset?.seconds);
      // Redis' clock moves: bounds no slow machine reaches.
      expect(seconds).toBeGreaterThan(600);
      expect(seconds).toBeLessThanOrEqual(720);
      expect(over.responseHeadersToAdd).toEqual([expect.objectContaining({ key: 'RateLimit-Policy', value: '"shared.user";q=5;w=3600' }), expect.objectContaining({ key: 'RateLimit', value: `"shared.user";r=0;t=${seconds}` })]);
    }
  });

  it('shares blocks and the security mode with every agent on the same Redis', async () => {
    const adminA = connect({ addr: a.addr, token: TOKENS.adminA });
    const adminB = connect({ addr: a.addr, token: TOKENS.adminB });
    const block = async (entity: string) => {
      const { action } = await adminA.unary(SecurityService.method.requestAction, { change: { case: 'block', value: { entity, reason: 'shared', durationSeconds: 0 } } });
      await adminB.unary(SecurityService.method.approveAction, { id: action?.id ?? '' });
    };
    await block('user=mallory');
    // Approved on agent A; agent B refuses it too.
    await expect.poll(async () => (await check(cb, 'user', 'mallory')).overallCode, { timeout: 5_000 }).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect((await check(ca, 'user', 'mallory')).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    const onB = connect({ addr: b.addr, token: TOKENS.adminA });
    expect((await onB.unary(SecurityService.method.getState, {})).blocks.map((x) => x.entity)).toEqual(['user=mallory']);
    onB.close();
    const { action } = await adminA.unary(SecurityService.method.requestAction, { change: { case: 'unblock', value: { entity: 'user=mallory' } } });
    await adminB.unary(SecurityService.method.approveAction, { id: action?.id ?? '' });
    await expect.poll(async () => (await check(cb, 'user', 'mallory')).overallCode, { timeout: 5_000 }).toBe(RateLimitResponse_Code.OK);
    adminA.close();
    adminB.close();
  });

  it('keeps answering within the timeout by its failure mode while Redis is down, and recovers when it returns', async () => {
    await redis.stop();
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      const [ra, rb] = await Promise.all([check(ca, 'user', `down-${i}`), check(cb, 'user', `down-${i}`)]);
      // Far above the backend timeout, far below a wait for Redis to come back (which never ends here).
      expect(performance.now() - t0).toBeLessThan(10_000);
      expect(ra.overallCode).toBe(RateLimitResponse_Code.OK); // failure_mode: allow
      expect(rb.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT); // failure_mode: deny
    }
    expect(await a.metrics()).toMatch(/^heimdall_ratelimit_backend_errors_total [1-9]/m);
    expect(await a.metrics()).toMatch(/^heimdall_ratelimit_circuit_open 1/m);
    // The outage shows as a degraded component; the pod stays ready.
    expect(await a.metrics()).toMatch(/^heimdall_component_state\{component="ratelimit-redis",state="degraded"\} 1$/m);
    expect(await a.metrics()).toMatch(/^heimdall_ready\{probe="pod"\} 1$/m);
    await redis.start();
    await expect.poll(async () => (await check(cb, 'user', 'back')).overallCode, { timeout: 10_000, interval: 200 }).toBe(RateLimitResponse_Code.OK);
    // Agent a allows while Redis is away: its health says when its checks reach Redis again.
    await expect
      .poll(async () => (await check(ca, 'user', 'back'), a.metrics()), { timeout: 10_000, interval: 200 })
      .toMatch(/^heimdall_component_state\{component="ratelimit-redis",state="ready"\} 1$/m);
    const got = await codes('user', 'after', 7);
    expect(got.filter((c) => c === RateLimitResponse_Code.OK)).toHaveLength(5);
  }, 30_000);
});

describe.runIf(haveBinary('redis-server'))('rate limits through Redis Sentinel', () => {
  const dir = tempDir();
  let redis: TestRedis;
  let sentinel: ChildProcess;
  let a: Awaited<ReturnType<typeof agent>>;
  beforeAll(async () => {
    redis = await startRedis();
    const limits = join(dir.path, 'limits');
    mkdirSync(limits);
    writeFileSync(join(limits, 'shared.yaml'), LIMITS);
    // A real sentinel (redis-server --sentinel) that monitors the master.
    const port = await freePort();
    const conf = join(dir.path, 'sentinel.conf');
    writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 ${redis.port} 1\n`);
    sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    a = await agent(dir.path, 's', `sentinels: ["127.0.0.1:${port}"], sentinel_name: mymaster`, 'deny');
  }, 60_000);
  afterAll(async () => {
    await new Promise((resolve) => (a.child.exitCode !== null ? resolve(undefined) : (a.child.once('exit', resolve), a.child.kill('SIGTERM'))));
    sentinel.kill('SIGKILL');
    await redis.stop();
    dir.cleanup();
  });

  it('finds the master through the sentinel and enforces the shared limit', async () => {
    const c = connect({ addr: a.addr, token: TOKENS.envoy });
    const got: RateLimitResponse_Code[] = [];
    for (let i = 0; i < 7; i++) got.push((await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shared', descriptors: [{ entries: [{ key: 'user', value: 'via-sentinel' }] }] })).overallCode);
    c.close();
    // failure_mode deny: passing checks prove the answers came from Redis.
    expect(got).toEqual([...Array<RateLimitResponse_Code>(5).fill(RateLimitResponse_Code.OK), RateLimitResponse_Code.OVER_LIMIT, RateLimitResponse_Code.OVER_LIMIT]);
  });
});

describe.runIf(haveBinary('redis-server') && haveBinary('redis-cli'))('rate limits through Redis Cluster', () => {
  const dir = tempDir();
  const nodes: ChildProcess[] = [];
  let a: Awaited<ReturnType<typeof agent>>;
  beforeAll(async () => {
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'shared.yaml'), LIMITS);
    // Three real cluster masters, joined with redis-cli --cluster create.
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) {
      const nodeDir = join(dir.path, `node-${port}`);
      mkdirSync(nodeDir);
      nodes.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--dir', nodeDir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
    }
    await new Promise((r) => setTimeout(r, 500));
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
    // Wait until the cluster says it is ok.
    for (let i = 0; i < 50 && !execFileSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'], { encoding: 'utf8' }).includes('cluster_state:ok'); i++) await new Promise((r) => setTimeout(r, 100));
    a = await agent(dir.path, 'c', `cluster: [${ports.map((p) => `"127.0.0.1:${p}"`).join(', ')}]`, 'deny');
  }, 60_000);
  afterAll(async () => {
    await new Promise((resolve) => (a.child.exitCode !== null ? resolve(undefined) : (a.child.once('exit', resolve), a.child.kill('SIGTERM'))));
    for (const n of nodes) n.kill('SIGKILL');
    dir.cleanup();
  });

  it('enforces limits whose keys live on different cluster nodes', async () => {
    const c = connect({ addr: a.addr, token: TOKENS.envoy });
    // The client discovers the cluster's slots when it connects: wait until it answers.
    await expect.poll(async () => (await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shared', descriptors: [{ entries: [{ key: 'user', value: 'warm-up' }] }] })).overallCode, { timeout: 10_000 }).toBe(RateLimitResponse_Code.OK);
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const got: RateLimitResponse_Code[] = [];
      for (let i = 0; i < 6; i++) got.push((await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shared', descriptors: [{ entries: [{ key: 'user', value: user }] }] })).overallCode);
      // failure_mode deny: passing checks prove the answers came from the cluster.
      expect(got).toEqual([...Array<RateLimitResponse_Code>(5).fill(RateLimitResponse_Code.OK), RateLimitResponse_Code.OVER_LIMIT]);
    }
    c.close();
  });
});
