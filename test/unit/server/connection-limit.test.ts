import { connect, createServer, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { limitConnections, type ConnectionLimit } from '../../../src/server/connection-limit.js';
import { until } from '../../support/wait.js';

/** A connection from `from`; `closed` turns true when the server closes it. */
function dial(port: number, from: string): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    let closed = false;
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.resume();
    socket.once('connect', () => resolve({ socket, closed: () => closed }));
  });
}

describe('limitConnections (real sockets)', () => {
  let server: Server | undefined;
  let limit: ConnectionLimit | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    limit?.stop();
    await new Promise((r) => server?.close(r));
  });

  const listen = async (options: { max: number; reserved: number; handshakeMs?: number; handshakeBytes?: number; idleMs?: number; idleBy?: 'bytes' | 'calls' }, metrics = new Registry()) => {
    server = createServer();
    limit = limitConnections(server, { name: 'test', maxConnections: options.max, reserved: options.reserved, handshakeTimeoutMs: options.handshakeMs ?? 0, handshakeBytes: options.handshakeBytes ?? 0, idleTimeoutMs: options.idleMs ?? 0, idleBy: options.idleBy, metrics });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  };
  const from = async (port: number, source: string, n: number) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const d = await dial(port, source);
      sockets.push(d.socket);
      out.push(d);
    }
    return out;
  };

  it('gives a peer the shared slots only; the reserved ones go to peers holding fewer than half of them; past the cap nobody gets in', async () => {
    const metrics = new Registry();
    const port = await listen({ max: 6, reserved: 2 }, metrics);
    const hog = await from(port, '127.0.0.2', 6);
    await until(() => hog.filter((d) => d.closed()).length === 2, 5_000, 'the hog past the shared slots refused');
    const other = await from(port, '127.0.0.3', 2); // one reserved slot (it then holds 1 = half of 2)
    await until(() => other[1]?.closed(), 5_000, "the other peer's second connection refused");
    const third = await from(port, '127.0.0.4', 1); // the last reserved slot
    const late = await from(port, '127.0.0.5', 1); // past max_connections
    await until(() => late[0]?.closed(), 5_000, 'a connection past the cap refused');
    expect([other[0]?.closed(), third[0]?.closed()]).toEqual([false, false]);
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_server_connections_refused_total{server="test",reason="reserved"} 3');
    expect(text).toContain('heimdall_server_connections_refused_total{server="test",reason="limit"} 1');
    expect(text).toContain('heimdall_server_connections{server="test"} 6');
  });

  it('closes a connection that sent too few bytes by the handshake deadline, and one silent for the idle timeout; an active one stays', async () => {
    const port = await listen({ max: 10, reserved: 0, handshakeMs: 500, handshakeBytes: 4, idleMs: 2_000 });
    const [silent] = await from(port, '127.0.0.2', 1);
    const [short] = await from(port, '127.0.0.2', 1);
    const [talker] = await from(port, '127.0.0.2', 1);
    short?.socket.write('ab');
    talker?.socket.write('hello');
    const chatter = setInterval(() => talker?.socket.write('hello'), 250);
    try {
      await until(() => silent?.closed() && short?.closed(), 5_000, 'handshake deadline');
      expect(talker?.closed()).toBe(false);
      clearInterval(chatter);
      await until(() => talker?.closed(), 5_000, 'idle deadline');
    } finally {
      clearInterval(chatter);
    }
  });

  it('idleBy calls: bytes do not keep a connection open, a call started or in flight does; a peer unknown to it changes nothing', async () => {
    const port = await listen({ max: 10, reserved: 0, idleMs: 1_000, idleBy: 'calls' });
    const [talker, caller, long] = await from(port, '127.0.0.2', 3);
    const key = (d: typeof talker) => `127.0.0.2:${String(d?.socket.localPort)}`;
    const chatter = setInterval(() => talker?.socket.write('ping'), 100);
    const calls = setInterval(() => limit?.callEnded(limit.callStarted(key(caller))), 200);
    const inFlight = limit?.callStarted(key(long));
    expect(limit?.callStarted('127.0.0.9:1')).toBeUndefined();
    try {
      await until(() => talker?.closed(), 5_000, 'the connection sending bytes but no calls closed');
      await new Promise((r) => setTimeout(r, 1_500));
      expect([caller?.closed(), long?.closed()]).toEqual([false, false]);
      limit?.callEnded(inFlight);
      await until(() => long?.closed(), 5_000, 'the connection closed once its call ended');
      expect(caller?.closed()).toBe(false);
    } finally {
      clearInterval(chatter);
      clearInterval(calls);
    }
  });
});
