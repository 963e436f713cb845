import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Link-local networks and cloud metadata endpoints: a probe there reads instance credentials
 * (AWS, GCP, Azure and OpenStack at 169.254.169.254, ECS at 169.254.170.2, AWS over IPv6 at
 * fd00:ec2::254, Alibaba Cloud at 100.100.100.200).
 */
const BLOCKED_NETWORKS = ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32'];
/** Names of metadata services, refused before they are resolved. */
const BLOCKED_NAMES = /^(metadata|metadata\.google\.internal|metadata\.goog|instance-data(\.ec2\.internal)?)\.?$/i;

/** A `host` or `host/prefix` (IPv4 or IPv6) as BlockList takes it; undefined when it is not one. */
export function parseNetwork(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = text.split('/');
  const v = isIP(address);
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

/** An IPv4-mapped IPv6 address (`::ffff:169.254.169.254`, `::ffff:a9fe:a9fe`) as the IPv4 address it stands for. */
function unmapped(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (dotted) return { address: dotted, family: 'ipv4' };
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex) {
    const n = (parseInt(hex[1] ?? '0', 16) << 16) | parseInt(hex[2] ?? '0', 16);
    return { address: [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'), family: 'ipv4' };
  }
  return { address, family: isIP(address) === 4 ? 'ipv4' : 'ipv6' };
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
  const blocked = blockList(BLOCKED_NETWORKS);
  const exempt = blockList(allowed);
  const refusedAddress = (address: string): string | undefined => {
    const a = unmapped(address);
    if (!blocked.check(a.address, a.family) || exempt.check(a.address, a.family)) return undefined;
    return `${address} is a link-local or cloud metadata address (allow it in jobs.http_check.allowed_networks)`;
  };
  return {
    refusedHost(host) {
      const bare = host.replace(/^\[|\]$/g, '');
      if (isIP(bare) !== 0) return refusedAddress(bare);
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
