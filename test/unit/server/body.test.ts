/** Request bodies are admitted before they are held, per chunk and per inflated chunk; a body over its limit is drained so the client reads the answer. */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { BodyTooLarge, readBody, UnreadableBody } from '../../../src/server/body.js';

/** An admission that records what it was asked for and refuses past `room` bytes. */
function admission(room = Number.POSITIVE_INFINITY) {
  const grown: number[] = [];
  return {
    grown,
    total: () => grown.reduce((a, b) => a + b, 0),
    grow(bytes: number) {
      if (grown.reduce((a, b) => a + b, 0) + bytes > room) throw new RetryableError('memory limit', 1_000);
      grown.push(bytes);
    },
  };
}

let server: Server | undefined;
afterEach(() => {
  server?.closeAllConnections();
  server?.close();
});

/** A server that reads each body with readBody (admitting each chunk) and answers its size, or the error's name. */
async function serve(maxBytes: number, adm: ReturnType<typeof admission>): Promise<string> {
  server = createServer((req: IncomingMessage, res) => {
    readBody(req, { maxBytes, decompress: true, take: (bytes) => adm.grow(bytes) }).then(
      (body) => res.end(`ok ${body.length}`),
      (err: Error) => {
        res.setHeader('connection', 'close');
        res.end(err.name === 'Error' ? err.constructor.name : err.name);
      },
    );
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Sends headers and `chunks`, then waits for the answer without ending the body unless `end`. */
function send(url: string, headers: Record<string, string | number>, chunks: Buffer[], end = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    if (end) req.end();
  });
}

describe('readBody', () => {
  it('admits an uncompressed body as it arrives, not on its Content-Length: a request that sends only its headers holds nothing', async () => {
    const adm = admission();
    const url = new URL(await serve(20 * 1024 * 1024, adm));
    // Declares 10 MB and sends 1 KB: only that KB is admitted (it used to reserve the 10 MB before the first byte).
    const socket = connect(Number(url.port), url.hostname);
    socket.write(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n`);
    socket.write(Buffer.alloc(1024));
    await expect.poll(() => adm.total()).toBe(1024);
    socket.destroy();
    const ok = admission();
    const url2 = await serve(20 * 1024 * 1024, ok);
    expect(await send(url2, { 'content-length': 5000 }, [Buffer.alloc(5000)])).toBe('ok 5000');
    expect(ok.total()).toBe(5000);
  });

  it('admits a chunked body as it arrives, and stops reading at the first refusal', async () => {
    const adm = admission(300 * 1024);
    const url = await serve(20 * 1024 * 1024, adm);
    // 64 KiB chunks, 1 MiB in all, the end never sent: the refusal comes while the client still writes.
    const answer = await send(url, { 'transfer-encoding': 'chunked' }, Array.from({ length: 16 }, () => Buffer.alloc(64 * 1024)), false);
    expect(answer).toBe('RetryableError');
    expect(adm.total()).toBeLessThanOrEqual(300 * 1024);
    const ok = admission();
    const url2 = await serve(20 * 1024 * 1024, ok);
    expect(await send(url2, { 'transfer-encoding': 'chunked' }, [Buffer.alloc(1000), Buffer.alloc(2000)])).toBe('ok 3000');
    expect(ok.total()).toBe(3000);
  });

  it('admits compressed bodies by their inflated bytes as they grow: a gzip bomb stops at the limit', async () => {
    const adm = admission();
    const url = await serve(1024 * 1024, adm);
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(1024 * 1024);
    expect(await send(url, { 'content-encoding': 'gzip', 'content-length': bomb.length }, [bomb])).toBe('BodyTooLarge');
    // Admitted in inflated chunks, never much past the limit.
    expect(adm.total()).toBeLessThanOrEqual(1024 * 1024);
    const refused = admission(200 * 1024);
    const url2 = await serve(64 * 1024 * 1024, refused);
    expect(await send(url2, { 'content-encoding': 'gzip', 'content-length': bomb.length }, [bomb])).toBe('RetryableError');
    expect(refused.total()).toBeLessThanOrEqual(200 * 1024);
    const ok = admission();
    const url3 = await serve(1024 * 1024, ok);
    expect(await send(url3, { 'content-encoding': 'deflate' }, [deflateSync(Buffer.alloc(100_000, 7))])).toBe('ok 100000');
    expect(ok.total()).toBe(100_000);
  });

  it('refuses what it cannot read: an encoding it does not know, corrupt compressed data, a declared length over the limit', async () => {
    const url = await serve(1024, admission());
    expect(await send(url, { 'content-encoding': 'br' }, [Buffer.alloc(10)])).toBe('UnreadableBody');
    expect(await send(url, { 'content-encoding': 'gzip' }, [Buffer.from('not gzip at all')])).toBe('UnreadableBody');
    expect(await send(url, { 'content-length': 2048 }, [Buffer.alloc(2048)])).toBe('BodyTooLarge');
    expect(new UnreadableBody('x').name).toBe('UnreadableBody');
    expect(new BodyTooLarge('x')).toBeInstanceOf(Error);
  });
});
