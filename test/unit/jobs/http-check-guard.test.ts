/** The http-check's address guard: link-local and metadata addresses refused, checked on the resolved address, resolved once. */
import type { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAddressGuard, parseNetwork } from '../../../src/jobs/kinds/address-guard.js';
import { createHttpCheck } from '../../../src/jobs/kinds/http-check.js';
import { silentLogger } from '../../support/temp.js';

/** A resolver answering from a table, in turn for each call (the DNS of a rebinding attack), counting calls. */
function resolver(answers: Record<string, string[][]>) {
  const calls: string[] = [];
  const resolve = ((hostname: string, _options: unknown, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => {
    const n = calls.filter((h) => h === hostname).length;
    calls.push(hostname);
    const list = answers[hostname]?.[Math.min(n, (answers[hostname]?.length ?? 1) - 1)];
    if (!list) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    callback(null, list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  }) as unknown as typeof dnsLookup;
  return { resolve, calls };
}

const ctx = (signal = new AbortController().signal) => ({ runId: 'r', jobName: 'probe', correlationId: 'c', signal, progress: () => undefined, logger: silentLogger() });

describe('http-check address guard', () => {
  it('parses networks as BlockList takes them, and nothing else', () => {
    expect(parseNetwork('169.254.169.254')).toEqual({ address: '169.254.169.254', prefix: 32, family: 'ipv4' });
    expect(parseNetwork('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseNetwork('fd00:ec2::254/128')).toEqual({ address: 'fd00:ec2::254', prefix: 128, family: 'ipv6' });
    expect(parseNetwork('::ffff:10.0.0.1')).toEqual({ address: '::ffff:10.0.0.1', prefix: 128, family: 'ipv6' });
    for (const bad of ['', 'metadata', '10.0.0', '010.0.0.1', '256.0.0.1', '10.0.0.0/33', '10.0.0.0/x', 'fe80::/129', 'fe80::zz', 'fe80::1%eth0', '10.0.0.0/8/8', '1.2.3.4:80']) expect(parseNetwork(bad), bad).toBeUndefined();
  });

  let server: Server;
  let port = 0;
  let hits = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => {
      hits += 1;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('refuses link-local and cloud metadata addresses and names, in every spelling; other addresses pass', () => {
    const guard = createAddressGuard([]);
    for (const host of [
      '169.254.169.254', '169.254.170.2', '169.254.0.1', '[fe80::1]', '[fd00:ec2::254]', '100.100.100.200', '168.63.129.16',
      // IPv6 forms that reach an IPv4 host: mapped, compatible, NAT64.
      '[::ffff:169.254.169.254]', '[::ffff:a9fe:a9fe]', '[0:0:0:0:0:ffff:a9fe:a9fe]', '[::169.254.169.254]', '[::a9fe:a9fe]', '[64:ff9b::a9fe:a9fe]', '[64:ff9b::169.254.169.254]',
      'metadata.google.internal', 'METADATA.GOOGLE.INTERNAL.', 'metadata.goog', 'metadata',
    ]) {
      expect(guard.refusedHost(host), host).toMatch(/link-local or cloud metadata address|cloud metadata service/);
    }
    for (const host of ['127.0.0.1', '10.0.0.7', '[::1]', '[::]', '192.168.1.1', 'example.com', 'metadata.example.com', '[fd00:ec2::253]', '[64:ff9b::a00:7]', '[2001:db8::a9fe:a9fe]']) expect(guard.refusedHost(host), host).toBeUndefined();
  });

  it('lets configured networks through', () => {
    const guard = createAddressGuard(['169.254.169.254/32', 'fe80::/64']);
    expect(guard.refusedAddress('169.254.169.254')).toBeUndefined();
    expect(guard.refusedAddress('fe80::1')).toBeUndefined();
    expect(guard.refusedAddress('169.254.169.253')).toMatch(/jobs\.http_check\.allowed_networks/);
  });

  it('checks the resolved address: a name that resolves to a metadata address is refused, with no connection made', async () => {
    const dns = resolver({ 'innocent.example': [['198.51.100.7', '169.254.169.254']] });
    const probe = createHttpCheck({ pipeline: { consume: async () => undefined }, metrics: new Registry(), guard: createAddressGuard([], dns.resolve) });
    await expect(probe({ url: 'http://innocent.example/latest/meta-data/', timeout: '2s' }, ctx())).rejects.toThrow(
      'GET http://innocent.example/latest/meta-data/: refused: innocent.example resolves to 169.254.169.254 is a link-local or cloud metadata address (allow it in jobs.http_check.allowed_networks)',
    );
    await expect(probe({ url: 'http://[::ffff:169.254.169.254]/', timeout: '2s' }, ctx())).rejects.toThrow(/refused: ::ffff:a9fe:a9fe is a link-local/);
  });

  it('resolves once and connects to the address it checked (a second, rebound answer is never used)', async () => {
    // First answer: this machine; any later answer: the metadata service.
    const dns = resolver({ 'rebind.example': [['127.0.0.1'], ['169.254.169.254']] });
    const probe = createHttpCheck({ pipeline: { consume: async () => undefined }, metrics: new Registry(), guard: createAddressGuard([], dns.resolve) });
    const before = hits;
    const result = await probe({ url: `http://rebind.example:${port}/health` }, ctx());
    expect(result.result).toMatchObject({ status: 200, ok: true });
    expect(hits).toBe(before + 1);
    expect(dns.calls).toEqual(['rebind.example']);
    // The next probe resolves again, gets the rebound answer, and is refused.
    await expect(probe({ url: `http://rebind.example:${port}/health` }, ctx())).rejects.toThrow(/refused: rebind\.example resolves to 169\.254\.169\.254/);
    expect(hits).toBe(before + 1);
  });

  it('never goes through a proxy from the environment (the proxy would resolve the name, past the guard)', async () => {
    let proxied = 0;
    const proxy = createServer((_req, res) => {
      proxied += 1;
      res.end('proxied');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const before = hits;
    // Node reads NODE_USE_ENV_PROXY at start: the probe runs in a process of its own, from the build.
    const dist = join(import.meta.dirname, '..', '..', '..', 'dist');
    const script = `import { Registry } from 'prom-client';
      import { createAddressGuard } from '${dist}/jobs/kinds/address-guard.js';
      import { createHttpCheck } from '${dist}/jobs/kinds/http-check.js';
      const probe = createHttpCheck({ pipeline: { consume: async () => undefined }, metrics: new Registry(), guard: createAddressGuard([]) });
      const ctx = { runId: 'r', jobName: 'p', correlationId: 'c', signal: new AbortController().signal, progress: () => undefined, logger: { info() {}, warn() {}, error() {}, debug() {} } };
      const r = await probe({ url: 'http://127.0.0.1:${port}/via-env' }, ctx);
      process.stdout.write(JSON.stringify(r.result));`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        cwd: join(import.meta.dirname, '..', '..', '..'),
        env: { ...process.env, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, NO_PROXY: '' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`probe exited ${String(code)}`))));
    });
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    expect(JSON.parse(out)).toMatchObject({ status: 200, ok: true });
    expect(proxied).toBe(0);
    expect(hits).toBe(before + 1);
  });
});
