import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import type { Logger } from '../telemetry/logger.js';

/**
 * The process' limit of open files (the soft RLIMIT_NOFILE, which Node.js raises to the hard one at
 * start), read from /proc/self/limits; undefined where that file is missing (not Linux) or says
 * unlimited. `read` is for tests.
 */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  return m?.[1] && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
}

/** Fewest connections a listener is lowered to, however few descriptors are left. */
const MIN_CONNECTIONS = 16;

/** A listener's connection cap and the part of it reserved for peers holding few (see connection-limit.ts). */
export interface ConnectionCap {
  max: number;
  reserved: number;
}

/**
 * The listeners' connection caps, lowered in proportion when together they would leave fewer than
 * `reserve` of `limit` file descriptors to the agent's own files (queue segments, the embedded
 * engine's parts, exports, Redis and ClickHouse sockets); each reserve is lowered in the same
 * proportion (rounded up, and always under its cap), so shared slots remain. Unchanged when there
 * is no limit.
 */
export function fitConnectionCaps<K extends string>(caps: Record<K, ConnectionCap>, limit: number | undefined, reserve: number): { caps: Record<K, ConnectionCap>; lowered: boolean } {
  const total = Object.values<ConnectionCap>(caps).reduce((a, b) => a + b.max, 0);
  const budget = limit === undefined ? Number.POSITIVE_INFINITY : limit - reserve;
  if (total <= budget) return { caps, lowered: false };
  const scale = Math.max(0, budget) / total;
  const fitted = Object.fromEntries(
    Object.entries<ConnectionCap>(caps).map(([name, { max, reserved }]) => {
      const lowered = Math.max(MIN_CONNECTIONS, Math.floor(max * scale));
      return [name, { max: lowered, reserved: Math.min(lowered - 1, Math.ceil((reserved * lowered) / max)) }];
    }),
  ) as Record<K, ConnectionCap>;
  return { caps: fitted, lowered: true };
}

/** The listeners' config slices, with max_connections and reserved_connections fitted to the open-file limit. */
export interface FittedListeners {
  grpc: Config['server']['grpc'];
  otlp_http: Config['server']['otlp_http'];
  admin: Config['server']['admin'];
  /** The rate-limit worker's listener (counted only when enabled). */
  ratelimit: Config['server']['ratelimit'];
}

/**
 * The listeners' slices of `server`, their connection caps lowered (fitConnectionCaps) to leave
 * `server.fd_reserve` of the open-file `limit` (default: this process') to the agent's own files;
 * logs a warning when it lowered them. Never throws.
 */
export function fitListeners(server: Config['server'], logger: Logger, limit: number | undefined = openFileLimit()): FittedListeners {
  const cap = (l: { max_connections: number; reserved_connections: number }): ConnectionCap => ({ max: l.max_connections, reserved: l.reserved_connections });
  const rls = server.ratelimit.enabled ? { ratelimit: cap(server.ratelimit) } : {};
  const fitted = fitConnectionCaps<keyof FittedListeners>({ grpc: cap(server.grpc), otlp_http: cap(server.otlp_http), admin: cap(server.admin), ...rls } as Record<keyof FittedListeners, ConnectionCap>, limit, server.fd_reserve);
  if (fitted.lowered) {
    const each = (f: (c: ConnectionCap) => number) => Object.fromEntries(Object.entries<ConnectionCap>(fitted.caps).map(([k, c]) => [k, f(c)]));
    logger.warn({ openFileLimit: limit, fdReserve: server.fd_reserve, maxConnections: each((c) => c.max), reservedConnections: each((c) => c.reserved) }, 'max_connections (and reserved_connections with them) lowered to fit the open-file limit (ulimit -n) minus server.fd_reserve');
  }
  const fit = (name: keyof FittedListeners) => (fitted.caps[name] ? { max_connections: fitted.caps[name].max, reserved_connections: fitted.caps[name].reserved } : {});
  return { grpc: { ...server.grpc, ...fit('grpc') }, otlp_http: { ...server.otlp_http, ...fit('otlp_http') }, admin: { ...server.admin, ...fit('admin') }, ratelimit: { ...server.ratelimit, ...fit('ratelimit') } };
}
