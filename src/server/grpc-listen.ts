import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../telemetry/logger.js';
import { limitConnections, type ConnectionLimit } from './connection-limit.js';
import { listenOn } from './listen.js';
import { readTls } from './tls.js';

/** Bytes a client sends first on HTTP/2: the connection preface (24) and a SETTINGS frame header (9). */
const HTTP2_OPENING_BYTES = 33;

/**
 * grpc-js option for every server of the agent: no channelz bookkeeping. The agent serves no
 * channelz service, and with it on grpc-js counts every call and message per server and connection
 * (two `Date`s and four closures a call).
 */
export const GRPC_JS_NO_CHANNELZ = { 'grpc.enable_channelz': 0 } as const;

/** What listenGrpc needs of a gRPC listener's slice (`server.grpc`, `server.ratelimit`). */
export type GrpcListenerConfig = Pick<Config['server']['grpc'], 'address' | 'tls' | 'handshake_timeout' | 'idle_timeout' | 'max_connections' | 'reserved_connections'>;

/** grpc-js credentials for the listener: TLS (mTLS with a client CA, handshake deadline) or plaintext. */
function credentials(config: GrpcListenerConfig): ServerCredentials {
  if (!config.tls) return ServerCredentials.createInsecure();
  const tls = readTls(config.tls);
  const ssl = ServerCredentials.createSsl(tls.ca ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.requireClientCert);
  // grpc-js has no option for the TLS handshake deadline (Node's default is 120 s); its
  // credentials hand these options to http2.createSecureServer (test/integration/connections.test.ts checks it holds).
  const serverOptions = ssl._getConstructorOptions();
  if (serverOptions) serverOptions.handshakeTimeout = config.handshake_timeout;
  return ssl;
}

/** Which listener listenGrpc opens: `name` is the `server` label, `what` names it in a bind error, `idleBy` as limitConnections takes it. */
export interface GrpcListenerName {
  name: string;
  what: string;
  idleBy?: 'bytes' | 'calls';
}

/**
 * Listens on config.address and hands each connection to grpc-js, through the connection limit
 * (cap, reserve, handshake and idle deadlines), counted under the listener's name. Resolves once
 * listening, with the bound port.
 */
export async function listenGrpc(server: Server, config: GrpcListenerConfig, metrics: Registry, logger: Logger, { name, what, idleBy }: GrpcListenerName = { name: 'grpc', what: 'gRPC' }): Promise<{ listener: NetServer; connections: ConnectionLimit; port: number }> {
  const creds = credentials(config);
  // The listening socket is ours and its connections are handed to grpc-js: grpc-js leaves
  // Nagle's algorithm on, and with the peer's delayed ACK a response split over two segments
  // waits up to 40 ms (measured: p99 6 ms -> 0.7 ms at 650 calls/s).
  const injector = server.createConnectionInjector(creds);
  // A socket refused by the connection limit is already destroyed when this listener runs.
  const net = createNetServer({ noDelay: true, keepAlive: true }, (socket) => void (socket.destroyed || injector.injectConnection(socket)));
  // A client must open HTTP/2 (or start TLS) within the handshake deadline; one that then sends
  // nothing at all, not even keepalive acks, for idle_timeout is dropped (`idleBy` calls: one
  // without a call for idle_timeout).
  const connections = limitConnections(net, {
    name,
    maxConnections: config.max_connections,
    reserved: config.reserved_connections,
    handshakeTimeoutMs: config.handshake_timeout,
    handshakeBytes: HTTP2_OPENING_BYTES,
    idleTimeoutMs: config.idle_timeout,
    idleBy,
    metrics,
  });
  const port = await listenOn(net, { address: config.address, what, logger, errorMessage: `${what} listener error` });
  return { listener: net, connections, port };
}

/** Lets calls in flight finish for up to graceMs (no new ones), then cuts the rest. Never rejects. */
export function drainGrpc(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
