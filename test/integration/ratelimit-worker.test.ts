/**
 * The rate-limit worker thread: its own listener, its metrics in the one /metrics, over-limit events
 * written by the main thread, its death reported and healed, and a clean shutdown; from the TypeScript
 * sources (in-process agent) and from dist/ (the built agent as a process).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { RateLimitRequestSchema, RateLimitResponse_Code as Code, RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { sharedClock, startTestAgent } from '../support/agent.js';
import { startAgentProcess, writeAgentConfig } from '../support/agent-process.js';
import { haveBinary, promtoolCheck } from '../support/binaries.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const LIMITS = 'domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: hour, requests_per_unit: 2 }\n';
const request = (ip: string) => ({ domain: 'edge', descriptors: [{ entries: [{ key: 'remote_address', value: ip }] }] });

/** A thread's name and niceness, from /proc (field 19 of stat, after the parenthesised name). */
function thread(pid: number, tid: string): { name: string; nice: number } {
  const stat = readFileSync(`/proc/${String(pid)}/task/${tid}/stat`, 'utf8');
  return { name: readFileSync(`/proc/${String(pid)}/task/${tid}/comm`, 'utf8').trim(), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
}

/** Each family's `# TYPE` lines in a /metrics text, by name. */
const typeLines = (text: string) => text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);

describe('rate-limit worker (in-process agent, TypeScript sources)', () => {
  it('shows its families once in /metrics (promtool accepts it), and its over-limit records arrive in storage', async () => {
    const dir = tempDir();
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'edge.yaml'), LIMITS);
    const t = await startTestAgent({ ratelimit: { config_path: join(dir.path, 'limits'), over_limit_window: '1s' } }, { clock: sharedClock() });
    const grpc = connect({ addr: t.grpcAddress });
    const worker = connect({ addr: t.ratelimitAddress });
    try {
      for (const c of [grpc, worker, grpc, worker]) await c.unary(RateLimitService.method.shouldRateLimit, request('203.0.113.9'));
      const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
      const names = typeLines(text);
      expect(names.length).toBe(new Set(names).size);
      for (const family of ['heimdall_ratelimit_total_hits_total', 'heimdall_ratelimit_over_limit_total', 'heimdall_ratelimit_domains', 'heimdall_ratelimit_bucket_cache_bytes', 'heimdall_ratelimit_incidents_total', 'heimdall_grpc_server_handled_total', 'heimdall_server_connections']) expect(names).toContain(family);
      expect(text).toContain('heimdall_ratelimit_total_hits_total{domain="edge",descriptor="edge.remote_address"} 4');
      expect(text).toContain('heimdall_ratelimit_over_limit_total{domain="edge",descriptor="edge.remote_address"} 2');
      // Calls of both ports count in one series; the worker's connections under its own listener name.
      expect(text).toContain('heimdall_grpc_server_handled_total{grpc_service="envoy.service.ratelimit.v3.RateLimitService",grpc_method="ShouldRateLimit",grpc_code="OK"} 4');
      expect(text).toMatch(/heimdall_server_connections\{server="ratelimit"\} 1/);
      if (haveBinary('promtool')) expect(promtoolCheck(text)).toBe('exit=0');
      const q = connect({ addr: t.grpcAddress });
      const events = await until(async () => {
        const { events: found } = await q.unary(QueryService.method.listEvents, { categories: ['ratelimit'] });
        return found.length > 0 && found;
      }, 20_000, 'an over-limit event');
      expect(events[0]?.eventType).toBe('ratelimit.over_limit');
      q.close();
    } finally {
      grpc.close();
      worker.close();
      await t.stop();
      dir.cleanup();
    }
  });

  it('reports a worker that died (ratelimit degraded, logged) and starts a new one, its buckets full again', async () => {
    const dir = tempDir();
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'edge.yaml'), LIMITS);
    const t = await startTestAgent({ ratelimit: { config_path: join(dir.path, 'limits') } }, { clock: sharedClock() });
    const grpc = connect({ addr: t.grpcAddress });
    try {
      const codes = async (n: number) => {
        const out: Code[] = [];
        for (let i = 0; i < n; i++) out.push((await grpc.unary(RateLimitService.method.shouldRateLimit, request('198.51.100.3'))).overallCode);
        return out;
      };
      expect(await codes(3)).toEqual([Code.OK, Code.OK, Code.OVER_LIMIT]);
      await t.agent.ratelimit.terminateWorker();
      await until(() => t.logs.some((l) => l.msg === 'rate-limit worker exited; restarting it (local buckets start full again)'), 10_000, 'the exit logged');
      expect(t.logs.some((l) => String(l.msg).includes('rate-limit worker exited'))).toBe(true);
      await until(() => t.agent.ratelimit.port > 0, 20_000, 'a new worker listening');
      await until(() => t.agent.health.component('ratelimit')?.state === 'ready', 20_000, 'ratelimit ready again');
      // The agent lived on; the new worker's buckets are full.
      expect(await codes(3)).toEqual([Code.OK, Code.OK, Code.OVER_LIMIT]);
      const worker = connect({ addr: t.ratelimitAddress });
      expect((await worker.unary(RateLimitService.method.shouldRateLimit, request('198.51.100.3'))).overallCode).toBe(Code.OVER_LIMIT);
      worker.close();
    } finally {
      grpc.close();
      await t.stop();
      dir.cleanup();
    }
  });
});

/** One ShouldRateLimit call on a raw HTTP/2 session; resolves with its grpc-status. */
function rawCheck(session: ClientHttp2Session, ip: string): Promise<string> {
  const message = toBinary(RateLimitRequestSchema, create(RateLimitRequestSchema, request(ip)));
  const body = Buffer.alloc(5 + message.length);
  body.writeUInt32BE(message.length, 1);
  body.set(message, 5);
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': `/${RateLimitService.typeName}/ShouldRateLimit`, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('trailers', (trailers) => resolve(String(trailers['grpc-status'])));
    req.on('error', reject);
    req.resume();
    req.end(body);
  });
}

describe('rate-limit worker listener: idle connections', () => {
  it('closes a connection without calls for idle_timeout though it answers every keepalive ping, and keeps one with calls', async () => {
    const t = await startTestAgent({ server: { ratelimit: { idle_timeout: '1s', keepalive_time: '200ms', keepalive_timeout: '1s' } } });
    const [idle, busy] = [connectHttp2(`http://${t.ratelimitAddress}`), connectHttp2(`http://${t.ratelimitAddress}`)];
    const closedAt = new Map<ClientHttp2Session, number>();
    for (const s of [idle, busy]) {
      s.on('error', () => undefined);
      s.on('close', () => closedAt.set(s, performance.now()));
    }
    try {
      const t0 = performance.now();
      expect(await Promise.all([rawCheck(idle, '192.0.2.1'), rawCheck(busy, '192.0.2.2')])).toEqual(['0', '0']);
      // node:http2 acks the server's pings (every 200 ms): bytes keep arriving, calls do not.
      while (performance.now() - t0 < 3_000) {
        expect(await rawCheck(busy, '192.0.2.2')).toBe('0');
        await new Promise((r) => setTimeout(r, 250));
      }
      const idleClosed = closedAt.get(idle);
      expect(idleClosed).toBeDefined();
      expect((idleClosed ?? 0) - t0).toBeGreaterThanOrEqual(1_000);
      expect(closedAt.has(busy)).toBe(false);
      const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
      expect(text).toMatch(/heimdall_server_connections_timed_out_total\{server="ratelimit",reason="idle"\} 1\b/);
    } finally {
      idle.destroy();
      busy.destroy();
      await t.stop();
    }
  }, 30_000);
});

describe('rate-limit worker restarted while the limits file is refused', () => {
  it("starts from the last good limits, and `ratelimit` stays degraded with the file's reason", async () => {
    const dir = tempDir();
    mkdirSync(join(dir.path, 'limits'));
    const file = join(dir.path, 'limits', 'edge.yaml');
    writeFileSync(file, LIMITS);
    const t = await startTestAgent({ ratelimit: { config_path: join(dir.path, 'limits') } }, { clock: sharedClock() });
    const grpc = connect({ addr: t.grpcAddress });
    try {
      const codes = async (ip: string, n: number) => {
        const out: Code[] = [];
        for (let i = 0; i < n; i++) out.push((await grpc.unary(RateLimitService.method.shouldRateLimit, request(ip))).overallCode);
        return out;
      };
      writeFileSync(file, 'domain: edge\ndescriptors: []\n');
      await until(() => t.agent.health.component('ratelimit')?.state === 'degraded', 15_000, 'the bad file refused');
      const reason = t.agent.health.component('ratelimit')?.reason;
      expect(reason).toMatch(/needs at least one descriptor/);
      await t.agent.ratelimit.terminateWorker();
      await until(() => t.agent.ratelimit.port > 0 && t.logs.some((l) => l.msg === 'rate-limit worker exited; restarting it (local buckets start full again)'), 20_000, 'a new worker listening');
      await until(async () => (await grpc.unary(RateLimitService.method.shouldRateLimit, request('198.51.100.7')).catch(() => undefined)) !== undefined, 20_000, 'the new worker answering');
      // The new worker limits with the last good file (2 an hour), not with none.
      expect(await codes('198.51.100.8', 3)).toEqual([Code.OK, Code.OK, Code.OVER_LIMIT]);
      expect(t.agent.health.component('ratelimit')).toMatchObject({ state: 'degraded', reason });
    } finally {
      grpc.close();
      await t.stop();
      dir.cleanup();
    }
  });
});

describe('rate-limit worker (the built agent as a process)', () => {
  it('serves its own port from dist/, logs its lines with their component once, and the agent shuts down cleanly (the worker listener drained)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir.path, 'edge.yaml'), LIMITS);
    const agent = await startAgentProcess(writeAgentConfig(dir.path, { ratelimit: { config_path: join(dir.path, 'edge.yaml') } }));
    try {
      expect(agent.ports.ratelimit).toBeGreaterThan(0);
      const worker = connect({ addr: `127.0.0.1:${String(agent.ports.ratelimit)}` });
      const grpc = connect({ addr: agent.addr });
      expect((await worker.unary(RateLimitService.method.shouldRateLimit, request('192.0.2.1'))).overallCode).toBe(Code.OK);
      expect((await grpc.unary(RateLimitService.method.shouldRateLimit, request('192.0.2.1'))).overallCode).toBe(Code.OK);
      expect((await worker.unary(RateLimitService.method.shouldRateLimit, request('192.0.2.1'))).overallCode).toBe(Code.OVER_LIMIT);
      // The main thread yields to the worker on a shared core (server.ratelimit.main_thread_nice, 10); the worker keeps 0.
      // The embedded engine's threads, started by the main thread after the worker, inherit 10.
      const pid = agent.child.pid ?? 0;
      expect(thread(pid, String(pid)).nice).toBe(10);
      const threads = readdirSync(`/proc/${String(pid)}/task`).map((tid) => thread(pid, tid));
      expect(threads.find((th) => th.name.includes('heimdall-rate'))?.nice).toBe(0);
      const engine = threads.filter((th) => /^(BgSchPool|MergeMutate|ThreadPool)/.test(th.name));
      expect(engine.length).toBeGreaterThan(0);
      expect(engine.filter((th) => th.nice !== 10)).toEqual([]);
      worker.close();
      grpc.close();
      const started = Date.now();
      expect(await agent.stop()).toBe(0);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(agent.lines.some((l) => l.component === 'ratelimit' && l.level === 'error')).toBe(false);
      // The worker's lines, relayed by the main thread, name their component once.
      const serving = agent.raw.filter((l) => l.includes('rate-limit listener serving ShouldRateLimit'));
      expect(serving).toHaveLength(1);
      expect(serving[0]?.match(/"component":/g)).toEqual(['"component":']);
    } finally {
      await agent.stop();
      dir.cleanup();
    }
  });
});
