import { connect, createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenOn } from '../../../src/server/listen.js';
import { silentLogger } from '../../support/temp.js';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe('listenOn', () => {
  it('resolves with the port bound (port 0 picks one) and serves on it', async () => {
    const server = createServer((socket) => socket.end('hi'));
    servers.push(server);
    const port = await listenOn(server, { address: '127.0.0.1:0', what: 'test', logger: silentLogger(), errorMessage: 'test listener error' });
    expect(port).toBeGreaterThan(0);
    const text = await new Promise<string>((resolve) => {
      let got = '';
      connect(port, '127.0.0.1').on('data', (d) => (got += String(d))).on('end', () => resolve(got));
    });
    expect(text).toBe('hi');
  });

  it('rejects naming the address and listener when the port is taken or the address is not host:port', async () => {
    const first = createServer();
    servers.push(first);
    const port = await listenOn(first, { address: '127.0.0.1:0', what: 'test', logger: silentLogger(), errorMessage: 'e' });
    const second = createServer();
    servers.push(second);
    await expect(listenOn(second, { address: `127.0.0.1:${port}`, what: 'admin', logger: silentLogger(), errorMessage: 'e' })).rejects.toThrow(`cannot listen on 127.0.0.1:${port} (admin): listen EADDRINUSE`);
    await expect(listenOn(createServer(), { address: 'nowhere', what: 'gRPC', logger: silentLogger(), errorMessage: 'e' })).rejects.toThrow('cannot listen on nowhere (gRPC): not host:port');
  });

  it('logs an error after listening and keeps serving', async () => {
    const logged: string[] = [];
    const logger = { ...silentLogger(), error: (_: unknown, msg: string) => void logged.push(msg) } as unknown as ReturnType<typeof silentLogger>;
    const server = createServer();
    servers.push(server);
    await listenOn(server, { address: '127.0.0.1:0', what: 'test', logger, errorMessage: 'test listener error' });
    server.emit('error', new Error('EMFILE'));
    expect(logged).toEqual(['test listener error']);
    expect(server.listening).toBe(true);
  });
});
