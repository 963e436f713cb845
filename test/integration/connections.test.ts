/**
 * Hostile connections against low caps, with real sockets: a flood past max_connections, slowloris
 * clients and silent or half-opened HTTP/2 and TLS connections; probes, connected clients and
 * accepted streams go on.
 */
import { get as httpGet } from 'node:http';
import { connect as netConnect, createServer as netServer, Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { credentials, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { JobService } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Serving, type HealthCheckResponse } from '../../src/gen/grpc/health/v1/health_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary } from '../support/binaries.js';
import { makeCerts } from '../support/certs.js';
import { testClient, type TestClient } from '../support/grpc-client.js';
import { toBinary } from '@bufbuild/protobuf';
import { ExportTraceServiceRequestSchema } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { sleep, until } from '../support/wait.js';

/** An attacker's connection from its own loopback address (so it is another peer than the probes from 127.0.0.1). */
interface Held {
  socket: Socket;
  /** When the server closed it (ms since the test began), undefined while open. */
  closedAt: number | undefined;
}

const t0 = Date.now();
/** Opens a connection from `from` to 127.0.0.1:`port` and writes `first` (if any) once connected. */
function hold(port: number, from: string, first?: string | Buffer): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress: from });
    const held: Held = { socket, closedAt: undefined };
    socket.on('error', () => undefined);
    // Read what the server sends (settings, a 408), so its close is seen.
    socket.resume();
    socket.on('close', () => (held.closedAt = Date.now() - t0));
    socket.once('connect', () => {
      if (first !== undefined) socket.write(first);
      resolve(held);
    });
    socket.once('error', reject);
  });
}

/** Opens `n` connections one after another. */
async function holdMany(n: number, port: number, from: string, first?: string | Buffer): Promise<Held[]> {
  const out: Held[] = [];
  for (let i = 0; i < n; i++) out.push(await hold(port, from, first));
  return out;
}

/** Sends one header byte every 200 ms on each connection still open (a slowloris client). */
function trickle(held: Held[]): () => void {
  const timer = setInterval(() => {
    for (const h of held) if (h.closedAt === undefined) h.socket.write('x');
  }, 200);
  return () => clearInterval(timer);
}

/** A health answer, whichever it is (the agent may still be getting ready): the point is that it comes. */
const answered = (s: Serving | undefined): void => expect([Serving.SERVING, Serving.NOT_SERVING]).toContain(s);
const openCount = (held: Held[]): number => held.filter((h) => h.closedAt === undefined).length;
const sample = (text: string, series: string): number => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.slice(series.length + 1) ?? 0);

/** Times one probe from 127.0.0.1. */
async function probe(url: string): Promise<{ status: number; ms: number }> {
  const start = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - start };
}

describe('connections: caps, reserve for new peers, deadlines (real sockets)', () => {
  let t: TestAgent;
  let admin: number;
  let otlp: number;
  let grpc: number;
  const limits = { max_connections: 20, reserved_connections: 4, handshake_timeout: '2s' };
  const http = { ...limits, headers_timeout: '2s', request_timeout: '4s' };
  beforeAll(async () => {
    t = await startTestAgent({ log: { level: 'info' }, server: { admin: http, otlp_http: http, grpc: { ...limits, max_streams: 5, max_concurrent_streams: 4 } } });
    admin = t.agent.admin.port;
    otlp = t.agent.otlpHttp.port;
    grpc = t.agent.grpc.port;
  }, 60_000);
  afterAll(async () => {
    await t.stop();
  });

  it('admin: a peer flooding slowloris connections gets max_connections - reserved_connections; probes still answer; the slow ones are closed after headers_timeout', async () => {
    const held = await holdMany(40, admin, '127.0.0.2', 'GET /livez HTTP/1.1\r\nHost: x\r\n');
    const stop = trickle(held);
    try {
      // Past 16 (20 - 4 reserved) the peer's connections are closed at once.
      await until(() => openCount(held) <= 16 && held.filter((h) => h.closedAt !== undefined).length >= 24, 10_000, 'the excess closed');
      expect(openCount(held)).toBeLessThanOrEqual(16);
      // A probe from another peer gets a reserved slot (of 4, 2 at most a peer).
      const p = await probe(`http://127.0.0.1:${admin}/livez`);
      expect(p.status).toBe(200);
      const readyz = await probe(`http://127.0.0.1:${admin}/readyz`);
      expect([200, 503]).toContain(readyz.status); // answered; whether ready is another matter
      // The slow clients never finish their headers: closed after headers_timeout (2 s), not 66 s.
      await until(() => openCount(held) === 0, 15_000, 'slowloris connections closed');
    } finally {
      stop();
      for (const h of held) h.socket.destroy();
    }
    // Past the shared slots the peer's new connections were refused, or took the slot of its own oldest idle one.
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(sample(metrics, 'heimdall_server_connections_refused_total{server="admin",reason="reserved"}') + sample(metrics, 'heimdall_server_connections_evicted_total{server="admin"}')).toBeGreaterThanOrEqual(24);
  }, 60_000);

  it('OTLP/HTTP: slowloris connections are capped and closed after headers_timeout; exports from another peer land meanwhile', async () => {
    const held = await holdMany(30, otlp, '127.0.0.2', 'POST /v1/traces HTTP/1.1\r\nHost: x\r\n');
    const stop = trickle(held);
    try {
      await until(() => openCount(held) <= 16 && held.filter((h) => h.closedAt !== undefined).length >= 14, 10_000, 'the excess closed');
      const res = await fetch(`http://127.0.0.1:${otlp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: toBinary(ExportTraceServiceRequestSchema, traceRequest('probe', 1)), signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      await until(() => openCount(held) === 0, 15_000, 'slowloris connections closed');
    } finally {
      stop();
      for (const h of held) h.socket.destroy();
    }
  }, 60_000);

  it('gRPC: silent and half-opened connections are capped and closed after handshake_timeout; a connected client keeps its answers', async () => {
    const client = testClient(Health, `127.0.0.1:${grpc}`);
    const check = async () => (await client.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' })).reply.status;
    try {
      answered(await check());
      const silent = await holdMany(20, grpc, '127.0.0.2');
      const half = await holdMany(10, grpc, '127.0.0.3', 'PRI * HTTP/2.0\r\n');
      // 16 shared slots, one of them the client's; of the 4 reserved, a new peer (127.0.0.3) takes 2 at most.
      await until(() => openCount(silent) <= 15 && openCount(half) <= 2, 10_000, 'the excess closed');
      answered(await check());
      // Neither sent the HTTP/2 opening (33 bytes) within handshake_timeout (2 s).
      await until(() => openCount([...silent, ...half]) === 0, 15_000, 'silent and half-opened connections closed');
      answered(await check());
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      expect(sample(metrics, 'heimdall_server_connections_timed_out_total{server="grpc",reason="handshake"}')).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
    }
  }, 60_000);

  it('gRPC: long-lived streams past max_streams are refused with RESOURCE_EXHAUSTED; the open ones go on', async () => {
    const clients: TestClient[] = [];
    const streams: Array<ClientReadableStream<HealthCheckResponse>> = [];
    const first: Array<Promise<HealthCheckResponse>> = [];
    const ended: boolean[] = [];
    const watch = (): { stream: ClientReadableStream<HealthCheckResponse>; failed: Promise<ServiceError> } => {
      // A connection each (grpc-js would share one between clients): max_streams counts across connections.
      const c = testClient(Health, `127.0.0.1:${grpc}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(c);
      const stream = c.serverStream<typeof HealthCheckResponseSchema>('Watch', { service: '' });
      const i = ended.length;
      ended.push(false);
      stream.on('end', () => (ended[i] = true));
      first.push(new Promise((resolve) => stream.once('data', resolve)));
      return { stream, failed: new Promise((resolve) => stream.on('error', (e: ServiceError) => resolve(e))) };
    };
    try {
      for (let i = 0; i < 5; i++) streams.push(watch().stream);
      for (const f of first.slice(0, 5)) answered((await f).status);
      const sixth = watch();
      const err = await sixth.failed;
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toBe('5 grpc.health.v1.Health streams are open, the most server.grpc.max_streams (5) allows a service; retry later');
      await sleep(300);
      expect(ended.slice(0, 5)).toEqual([false, false, false, false, false]);
      // One ends: a new one is let in.
      streams[0]?.cancel();
      await until(async () => {
        const next = watch();
        const got = await Promise.race([first[first.length - 1], next.failed.then(() => undefined)]);
        if (got === undefined) return false;
        streams.push(next.stream);
        return true;
      }, 10_000, 'a stream once one ended');
    } finally {
      for (const s of streams) s.cancel();
      for (const c of clients) c.close();
    }
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(sample(metrics, 'heimdall_grpc_server_streams_refused_total{grpc_service="grpc.health.v1.Health",grpc_method="Watch"}')).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('gRPC: one connection carries at most max_concurrent_streams calls at once', async () => {
    const c = testClient(Health, `127.0.0.1:${grpc}`);
    const served = new Set<number>();
    const streams = Array.from({ length: 6 }, (_, i) => {
      const s = c.serverStream<typeof HealthCheckResponseSchema>('Watch', { service: '' });
      s.on('data', () => served.add(i));
      s.on('error', () => undefined);
      return s;
    });
    try {
      await until(() => served.size >= 4, 10_000, 'four streams served');
      await sleep(500);
      // The other two wait for a stream of the connection to end (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
      expect(served.size).toBe(4);
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      expect(sample(metrics, 'heimdall_grpc_server_streams')).toBe(4);
    } finally {
      for (const s of streams) s.cancel();
      c.close();
    }
  }, 30_000);
});

describe('connections: at the cap, connections without a request in progress give way (admin)', () => {
  let t: TestAgent;
  let admin: number;
  beforeAll(async () => {
    // Long deadlines: the connections are held while the test looks.
    t = await startTestAgent({ log: { level: 'info' }, server: { admin: { max_connections: 20, reserved_connections: 4, headers_timeout: '60s', request_timeout: '60s' } }, jobs: { system_check: { enabled: false } } });
    admin = t.agent.admin.port;
  }, 60_000);
  afterAll(async () => {
    await t.stop();
  });

  /** Half of a request body: the request is in progress until the rest comes. */
  const HALF = 'POST /ratelimit/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n{"dom';
  /** A connection with HALF sent, once the server took the request in hand (it answers 100 Continue then). */
  const working = async (from: string): Promise<Held> => {
    const h = await hold(admin, from);
    const taken = new Promise((resolve) => h.socket.once('data', resolve));
    h.socket.write(HALF);
    await taken;
    return h;
  };
  /** Sends the rest of HALF's body; resolves with the status line of the answer. */
  const finish = (h: Held): Promise<string> =>
    new Promise((resolve) => {
      h.socket.once('data', (d: Buffer) => resolve(d.toString().split('\r\n')[0] ?? ''));
      h.socket.write('ain"}');
    });
  /** A probe as the kubelet makes it: a new connection each time, closed after the answer (0: no answer). */
  const freshProbe = (path: string): Promise<number> =>
    new Promise((resolve) => {
      const req = httpGet({ host: '127.0.0.1', port: admin, path, agent: false, headers: { connection: 'close' }, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
  const evictions = async () => sample(await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text(), 'heimdall_server_connections_evicted_total{server="admin"}');

  it('past max_connections with every connection mid-request, a new connection is closed whoever it is from; those accepted keep their answers', async () => {
    const held: Held[] = [];
    for (let i = 10; i < 30; i++) held.push(await working(`127.0.0.${i}`));
    try {
      const extra = await hold(admin, '127.0.0.30');
      await until(() => extra.closedAt !== undefined, 10_000, 'the connection past the cap closed');
      expect(openCount(held)).toBe(20);
      expect(await finish(held[0] as Held)).toMatch(/^HTTP\/1\.1 [24]\d\d /);
    } finally {
      for (const h of held) h.socket.destroy();
    }
    await until(async () => (await probe(`http://127.0.0.1:${admin}/livez`)).status === 200, 10_000, 'probes once the peers left');
  }, 60_000);

  it('idle connections from many addresses take every slot: a probe still gets in, in place of an idle one of the peer holding most; a request in progress keeps its answer', async () => {
    const before = await evictions();
    const busy = await working('127.0.0.50');
    const idle: Held[] = [];
    for (let i = 1; i <= 40; i++) idle.push(await hold(admin, `127.0.1.${i}`));
    try {
      // Every slot is taken: 19 idle connections and the one mid-request.
      await until(() => openCount(idle) === 19, 10_000, 'the cap reached');
      for (let i = 0; i < 3; i++) expect(await freshProbe('/livez')).toBe(200);
      expect(await evictions()).toBeGreaterThan(before);
      expect(busy.closedAt).toBeUndefined();
      expect(await finish(busy)).toMatch(/^HTTP\/1\.1 [24]\d\d /);
    } finally {
      busy.socket.destroy();
      for (const h of idle) h.socket.destroy();
    }
  }, 60_000);

  it("a flood of idle connections from the probe's own address: the probe gets in, in place of that address' oldest idle connection", async () => {
    const idle = await holdMany(40, admin, '127.0.0.1');
    try {
      await until(() => openCount(idle) <= 20, 10_000, 'the cap reached');
      for (let i = 0; i < 3; i++) expect(await freshProbe('/readyz')).toBe(200);
    } finally {
      for (const h of idle) h.socket.destroy();
    }
  }, 60_000);
});

describe('connections: idle ones are closed, quiet streams are kept', () => {
  let t: TestAgent;
  beforeAll(async () => {
    t = await startTestAgent({ log: { level: 'info' }, server: { grpc: { idle_timeout: '3s', keepalive_time: '500ms', keepalive_timeout: '1s' }, admin: { idle_timeout: '1s' } } });
  }, 60_000);
  afterAll(async () => {
    await t.stop();
  });

  it('gRPC: a peer that opened HTTP/2 and then went silent is dropped; a Watch with nothing new for longer than idle_timeout stays open', async () => {
    const client = testClient(Health, `127.0.0.1:${t.agent.grpc.port}`);
    const stream = client.serverStream<typeof HealthCheckResponseSchema>('Watch', { service: '' });
    let ended = false;
    stream.on('error', () => (ended = true));
    stream.on('end', () => (ended = true));
    await new Promise((resolve) => stream.once('data', resolve));
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing: no answer to the server's pings.
    const mute = await hold(t.agent.grpc.port, '127.0.0.2', Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    await until(() => mute.closedAt !== undefined, 15_000, 'the silent peer dropped');
    await sleep(3_500);
    expect(ended).toBe(false);
    answered((await client.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' })).reply.status);
    stream.cancel();
    client.close();
  }, 30_000);

  it('admin: a kept-alive connection without a new request for idle_timeout is closed', async () => {
    const held = await hold(t.agent.admin.port, '127.0.0.2', 'GET /livez HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.closedAt !== undefined, 10_000, 'the idle connection closed');
  }, 30_000);
});

describe('connections: stream caps are counted after authentication, per service', () => {
  const ADMIN = 'admin-token-for-streams-01';
  const silent = netServer(() => undefined);
  let t: TestAgent;
  beforeAll(async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t = await startTestAgent({ log: { level: 'info' }, auth: { enabled: true, tokens: [{ name: 'admin', token: ADMIN, scopes: ['admin'] }] }, server: { grpc: { max_streams: 3 } }, jobs: { system_check: { enabled: false } } });
  }, 60_000);
  afterAll(async () => {
    await t.stop();
    silent.close();
  });

  it('health Watches anyone may open never take the streams of a service that needs a token; calls refused by auth hold none', async () => {
    const clients: TestClient[] = [];
    const cancels: Array<() => void> = [];
    // A connection each: the cap counts across connections.
    const client = <T extends GenServiceMethods>(service: GenService<T>) => {
      const c = testClient(service, t.grpcAddress, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(c);
      return c;
    };
    /** Opens a stream; resolves with its first message, or the error that ended it. */
    const open = <T extends GenServiceMethods>(service: GenService<T>, method: string, req: unknown, md?: Record<string, string>) => {
      const stream = client(service).serverStream(method, req, md);
      cancels.push(() => stream.cancel());
      return new Promise<{ data?: unknown; error?: ServiceError }>((resolve) => {
        stream.once('data', (data: unknown) => resolve({ data }));
        stream.once('error', (error: ServiceError) => resolve({ error }));
      });
    };
    try {
      // Health (no token needed) up to its cap, then refused.
      for (let i = 0; i < 3; i++) expect((await open(Health, 'Watch', { service: '' })).data).toBeDefined();
      const fourth = await open(Health, 'Watch', { service: '' });
      expect(fourth.error?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(fourth.error?.details).toBe('3 grpc.health.v1.Health streams are open, the most server.grpc.max_streams (3) allows a service; retry later');
      // Without a token: UNAUTHENTICATED, holding no stream of JobService.
      const c = connect({ addr: t.grpcAddress, token: ADMIN });
      const job = (await c.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, timeout: '60s' } })).job;
      for (let i = 0; i < 5; i++) expect((await open(JobService, 'WatchJob', { id: job?.id })).error?.code).toBe(status.UNAUTHENTICATED);
      // With a token, WatchJob gets its streams while every Health stream is taken.
      for (let i = 0; i < 3; i++) expect((await open(JobService, 'WatchJob', { id: job?.id }, { authorization: `Bearer ${ADMIN}` })).data).toBeDefined();
      const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
      expect(sample(metrics, 'heimdall_grpc_server_streams')).toBe(6);
      await c.unary(JobService.method.cancelJob, { id: job?.id ?? '' });
      c.close();
    } finally {
      for (const cancel of cancels) cancel();
      for (const c of clients) c.close();
    }
  }, 60_000);
});

describe('connections: listener errors after start', () => {
  let t: TestAgent;
  beforeAll(async () => {
    t = await startTestAgent({ log: { level: 'info' }, jobs: { system_check: { enabled: false } } });
  }, 60_000);
  afterAll(async () => {
    await t.stop();
  });

  it('an HTTP listener logs every accept error and keeps serving (the second one used to be fatal)', async () => {
    // The listening servers themselves: an accept error is what Node emits on them, e.g. when
    // libuv's spare-descriptor trick for EMFILE fails (another thread took the descriptor).
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    const listener = (port: number) => handles.find((h): h is NetServer => h instanceof NetServer && (h.address() as AddressInfo | null)?.port === port) as NetServer;
    for (const port of [t.agent.admin.port, t.agent.otlpHttp.port]) {
      for (let i = 0; i < 3; i++) listener(port).emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' }));
    }
    expect((await fetch(`${t.adminUrl}/livez`)).status).toBe(200);
    const logged = t.logs.filter((l) => l.msg === 'HTTP listener error');
    expect(logged.map((l) => l.component)).toEqual(['admin', 'admin', 'admin', 'otlp_http', 'otlp_http', 'otlp_http']);
    expect(JSON.stringify(logged[0]?.err)).toContain('EMFILE');
  });
});

describe.runIf(haveBinary('openssl'))('connections: a TLS handshake that never ends is closed after handshake_timeout', () => {
  const dir = tempDir();
  let t: TestAgent;
  beforeAll(async () => {
    const certs = makeCerts(dir.path);
    const tls = { cert_file: certs.serverCert, key_file: certs.serverKey };
    t = await startTestAgent({ log: { level: 'info' }, server: { grpc: { tls, handshake_timeout: '1s' }, admin: { tls, handshake_timeout: '1s' } } });
    // The TLS client the agent expects still connects (and is answered, ready or not yet).
    const ok = testClient(Health, `localhost:${t.agent.grpc.port}`, credentials.createSsl(certs.read(certs.caFile)));
    answered((await ok.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' })).reply.status);
    ok.close();
  }, 60_000);
  afterAll(async () => {
    await t.stop();
    dir.cleanup();
  });

  it('gRPC and admin: a ClientHello that stops halfway is dropped within seconds (Node waits 120 s by default)', async () => {
    // A TLS record header announcing a 512-byte handshake message, then only 60 bytes of it.
    const partial = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), Buffer.alloc(60, 1)]);
    const held = [await hold(t.agent.grpc.port, '127.0.0.2', partial), await hold(t.agent.admin.port, '127.0.0.2', partial)];
    await until(() => openCount(held) === 0, 15_000, 'half-done TLS handshakes closed');
  }, 30_000);
});
