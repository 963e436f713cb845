import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createConnectionTable, sweepDeadlines } from '../../../src/server/connection-table.js';
import { until } from '../../support/wait.js';

/** A loopback server and `n` client connections to it; resolves with the server-side sockets, in accept order. */
async function accepted(n: number): Promise<{ server: Server; sockets: Socket[]; clients: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => void sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const clients: Socket[] = [];
  for (let i = 0; i < n; i++) {
    clients.push(connect(port, '127.0.0.1'));
    await until(() => sockets.length === i + 1, 10_000, 'accept');
  }
  return { server, sockets, clients };
}

let open: Array<{ server: Server; clients: Socket[] }> = [];
afterEach(() => {
  for (const { server, clients } of open) {
    for (const c of clients) c.destroy();
    server.close();
  }
  open = [];
  vi.useRealTimers();
});

describe('connection table', () => {
  it('counts connections per peer and forgets them (twice is harmless)', async () => {
    const o = await accepted(3);
    open.push(o);
    const table = createConnectionTable();
    table.add(o.sockets[0]!, 'a', 1);
    table.add(o.sockets[1]!, 'a', 2);
    table.add(o.sockets[2]!, 'b', 3);
    expect([table.size, table.heldBy('a'), table.heldBy('b'), table.heldBy('c')]).toEqual([3, 2, 1, 0]);
    table.forget(o.sockets[0]!);
    table.forget(o.sockets[0]!);
    expect([table.size, table.heldBy('a')]).toEqual([2, 1]);
    expect([...table.entries()].map(([, e]) => e.peer)).toEqual(['a', 'b']);
  });

  it('picks the oldest idle connection of the peer holding the most, never one of a peer holding no more than the newcomer', async () => {
    const o = await accepted(4);
    open.push(o);
    const [a1, a2, b1, c1] = o.sockets as [Socket, Socket, Socket, Socket];
    const table = createConnectionTable();
    table.add(a1, 'a', 1);
    table.add(a2, 'a', 2);
    table.add(b1, 'b', 3);
    table.add(c1, 'c', 4);
    const all = () => true;
    expect(table.victim('new', all)).toBe(a1);
    expect(table.victim('new', (s) => s !== a1)).toBe(a2);
    // `b` holds one, as many as the others but `a`: only `a`'s, or its own.
    expect(table.victim('b', (s) => s === b1 || s === c1)).toBe(b1);
    expect(table.victim('a', (s) => s === b1)).toBeUndefined();
    expect(table.victim('new', () => false)).toBeUndefined();
  });

  it('closes a connection that sent too few bytes within the handshake deadline, or nothing for the idle deadline', async () => {
    const o = await accepted(2);
    open.push(o);
    const [quiet, talker] = o.sockets as [Socket, Socket];
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const table = createConnectionTable();
    table.add(quiet, '127.0.0.1', Date.now());
    table.add(talker, '127.0.0.1', Date.now());
    const closed: string[] = [];
    const stop = sweepDeadlines(table, { handshakeTimeoutMs: 1_000, handshakeBytes: 4, idleTimeoutMs: 0 }, (reason) => closed.push(reason));
    o.clients[1]!.write('hello');
    await vi.waitFor(() => expect(talker.bytesRead).toBe(5), { timeout: 10_000 });
    vi.advanceTimersByTime(1_000);
    expect(closed).toEqual(['handshake']);
    expect([quiet.destroyed, talker.destroyed]).toEqual([true, false]);
    stop();
    stop();
    table.forget(quiet);
    const idle = sweepDeadlines(table, { handshakeTimeoutMs: 0, handshakeBytes: 0, idleTimeoutMs: 2_000 }, (reason) => closed.push(reason));
    vi.advanceTimersByTime(1_000);
    expect(talker.destroyed).toBe(false);
    // Its bytes were last seen at the first sweep (250 ms): idle from 2 250 ms.
    vi.advanceTimersByTime(500);
    expect(closed).toEqual(['handshake', 'idle']);
    expect(talker.destroyed).toBe(true);
    idle();
  });

  it('sets no timer without a deadline', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const stop = sweepDeadlines(createConnectionTable(), { handshakeTimeoutMs: 1_000, handshakeBytes: 0, idleTimeoutMs: 0 }, () => undefined);
    expect(vi.getTimerCount()).toBe(0);
    stop();
  });
});
