import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, SocketAddress } from 'node:net';

/**
 * Link-local networks and cloud metadata endpoints: a probe there reads instance credentials
 * (AWS, GCP, Azure and OpenStack at 169.254.169.254, ECS at 169.254.170.2, AWS over IPv6 at
 * fd00:ec2::254, Alibaba Cloud at 100.100.100.200, Azure's WireServer at 168.63.129.16).
 */
const BLOCKED_NETWORKS = ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32', '168.63.129.16/32'];
/** Names of metadata services, refused before they are resolved. */
const BLOCKED_NAMES = /^(metadata|metadata\.google\.internal|metadata\.goog|instance-data(\.ec2\.internal)?)\.?$/i;

/**
 * 4 or 6 for an IPv4 or IPv6 address (no zone id), else 0. Parsed by the platform (inet_pton) through
 * SocketAddress, not node:net's isIP: its IPv6 pattern takes 10-40 ms to compile, on the path to ready.
 */
function ipVersion(address: string): 0 | 4 | 6 {
  const v6 = address.includes(':');
  if (address.includes('%')) return 0;
  try {
    new SocketAddress({ address, family: v6 ? 'ipv6' : 'ipv4' });
    return v6 ? 6 : 4;
  } catch {
    return 0;
  }
}

/** A `host` or `host/prefix` (IPv4 or IPv6) as BlockList takes it; undefined when it is not one. */
export function parseNetwork(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = text.split('/');
  const v = ipVersion(address);
  if (v === 0 || rest.length > 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
  return prefix >= 0 && prefix <= max ? { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' } : undefined;
}

function blockList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const n of networks) {
    const net = parseNetwork(n);
    if (!net) throw new Error(`invalid network ${JSON.stringify(n)}`);
    list.addSubnet(net.address, net.prefix, net.family);
  }
  return list;
}

/** The eight 16-bit groups of an IPv6 address (dotted IPv4 tails included); undefined when it is not one. */
function groups(address: string): number[] | undefined {
  if (ipVersion(address) !== 6) return undefined;
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) text = `${text.slice(0, dotted.index)}${((Number(dotted[1]) << 8) | Number(dotted[2])).toString(16)}:${((Number(dotted[3]) << 8) | Number(dotted[4])).toString(16)}`;
  const [head = '', tail] = text.split('::');
  const part = (t: string | undefined): number[] => (t ? t.split(':').map((g) => parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return tail === undefined ? h : [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/**
 * The IPv4 address an IPv6 address carries in its last 32 bits, for the forms that reach an IPv4
 * host: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`).
 * Any other address is returned as it is.
 */
function unmapped(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const g = groups(address);
  if (!g) return { address, family: ipVersion(address) === 4 ? 'ipv4' : 'ipv6' };
  const prefix = g.slice(0, 6).join(':');
  const v4 = [g[6] ?? 0, g[7] ?? 0];
  const carriesV4 = prefix === '0:0:0:0:0:65535' || prefix === '100:65435:0:0:0:0' || (prefix === '0:0:0:0:0:0' && (v4[0] ?? 0) !== 0);
  if (!carriesV4) return { address, family: 'ipv6' };
  return { address: [(v4[0] ?? 0) >> 8, (v4[0] ?? 0) & 255, (v4[1] ?? 0) >> 8, (v4[1] ?? 0) & 255].join('.'), family: 'ipv4' };
}

/** A probe refused before any connection: its host or resolved address is link-local or a metadata service. */
export class AddressRefused extends Error {
  override name = 'AddressRefused';
}

/** The `lookup` that http.request and net.connect take. */
export type Lookup = (hostname: string, options: { all?: boolean; family?: number | string }, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void) => void;

/** Refuses link-local and cloud metadata addresses unless a configured network allows them. */
export interface AddressGuard {
  /** Why `host` (a name or an IP literal, as in a URL) may not be probed by name alone, or undefined. */
  refusedHost(host: string): string | undefined;
  /** Why `address` (an IP) may not be connected to, or undefined. */
  refusedAddress(address: string): string | undefined;
  /**
   * A lookup that resolves once and hands the connection exactly the addresses it checked, so a
   * name cannot resolve to an allowed address for the check and to a refused one for the connection
   * (DNS rebinding). Fails with the reason when any address is refused.
   */
  readonly lookup: Lookup;
}

/** Creates the guard; `allowed` networks (`jobs.http_check.allowed_networks`) are exempt from the block. */
export function createAddressGuard(allowed: readonly string[], resolve: typeof dnsLookup = dnsLookup): AddressGuard {
  // Built at the first probe, off the path to ready (`allowed` was validated with the configuration).
  let lists: { blocked: BlockList; exempt: BlockList } | undefined;
  const refusedAddress = (address: string): string | undefined => {
    const a = unmapped(address);
    const { blocked, exempt } = (lists ??= { blocked: blockList(BLOCKED_NETWORKS), exempt: blockList(allowed) });
    if (!blocked.check(a.address, a.family) || exempt.check(a.address, a.family)) return undefined;
    return `${address} is a link-local or cloud metadata address (allow it in jobs.http_check.allowed_networks)`;
  };
  return {
    refusedHost(host) {
      const bare = host.replace(/^\[|\]$/g, '');
      if (ipVersion(bare) !== 0) return refusedAddress(bare);
      return BLOCKED_NAMES.test(bare) ? `${bare} is a cloud metadata service (allow its address in jobs.http_check.allowed_networks)` : undefined;
    },
    refusedAddress,
    lookup(hostname, options, callback) {
      resolve(hostname, { all: true, family: options.family === 6 || options.family === 'IPv6' ? 6 : options.family === 4 || options.family === 'IPv4' ? 4 : 0 }, (err, addresses) => {
        if (err) return callback(err, []);
        const refused = addresses.map((a) => refusedAddress(a.address)).find((r) => r !== undefined);
        if (refused) return callback(new AddressRefused(`refused: ${hostname} resolves to ${refused}`), []);
        if (options.all) return callback(null, addresses);
        const first = addresses[0];
        if (!first) return callback(new Error(`${hostname} has no address`), []);
        callback(null, first.address, first.family);
      });
    },
  };
}
