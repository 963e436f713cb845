import type { Server as NetServer, Socket } from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import { perRegistry } from '../telemetry/metrics.js';

/** Options for limitConnections. */
export interface ConnectionLimitOptions {
  /** Listener name, the `server` label of the metrics (e.g. `grpc`, `admin`). */
  name: string;
  /** Connections open at most; past it a new connection is closed as soon as it is accepted. */
  maxConnections: number;
  /**
   * The last this many of maxConnections go only to peers (remote addresses) holding fewer than
   * half that many connections here: a probe, or any other client, still gets in while one peer
   * holds all the rest.
   */
  reserved: number;
  /** A connection that has sent fewer than `handshakeBytes` bytes this long after it opened is closed; 0 bytes: no check. */
  handshakeTimeoutMs: number;
  handshakeBytes: number;
  /** A connection that has sent nothing for this long is closed; 0: no check. */
  idleTimeoutMs: number;
  metrics: Registry;
}

/** The connections of one listener, as limitConnections keeps them. */
export interface ConnectionLimit {
  /** Connections open now. */
  readonly open: number;
  /** Destroys every open connection (after a shutdown's grace). */
  destroyAll(): void;
  /** Stops the timeout checks. Safe to call twice. */
  stop(): void;
}

/** The connection metrics, shared by every listener registered in one registry. */
function connectionMetrics(registry: Registry) {
  return perRegistry(registry, 'connections', () => ({
    open: new Gauge({ name: 'heimdall_server_connections', help: 'Connections open, by listener.', labelNames: ['server'] as const, registers: [registry] }),
    refused: new Counter({
      name: 'heimdall_server_connections_refused_total',
      help: 'Connections closed as soon as they were accepted, by listener and reason (limit: max_connections reached; reserved: only the reserved slots were left, and the peer already held half of them).',
      labelNames: ['server', 'reason'] as const,
      registers: [registry],
    }),
    closed: new Counter({
      name: 'heimdall_server_connections_timed_out_total',
      help: 'Connections closed by a deadline of limitConnections, by listener and reason (handshake: too few bytes in time; idle: nothing received for the idle timeout).',
      labelNames: ['server', 'reason'] as const,
      registers: [registry],
    }),
  }));
}

/**
 * Bounds the connections of a listening (or about to listen) net server: a cap (Node's
 * `maxConnections`, so a refused connection costs no more than its accept), a reserve for peers
 * holding no connection, a handshake deadline (first bytes) and an idle deadline (bytes received),
 * both checked by one timer. Call before the server's own `connection` listeners run.
 */
export function limitConnections(server: NetServer, options: ConnectionLimitOptions): ConnectionLimit {
  const { open, refused, closed } = connectionMetrics(options.metrics);
  const labels = { server: options.name };
  const openGauge = open.labels(labels);
  openGauge.set(0);
  /** Per open connection: when it opened, its bytes read at the last check and when they last grew. */
  const sockets = new Map<Socket, { at: number; read: number; activeAt: number }>();
  const peers = new Map<string, number>();
  const shared = Math.max(0, options.maxConnections - options.reserved);
  /** Connections a peer may hold and still take a reserved slot. */
  const peerReserve = Math.max(1, Math.floor(options.reserved / 2));

  server.maxConnections = options.maxConnections;
  server.on('drop', () => refused.inc({ ...labels, reason: 'limit' }));
  server.prependListener('connection', (socket: Socket) => {
    const peer = socket.remoteAddress ?? '';
    if (sockets.size >= shared && (peers.get(peer) ?? 0) >= peerReserve) {
      refused.inc({ ...labels, reason: 'reserved' });
      socket.destroy();
      return;
    }
    const now = Date.now();
    sockets.set(socket, { at: now, read: 0, activeAt: now });
    peers.set(peer, (peers.get(peer) ?? 0) + 1);
    openGauge.set(sockets.size);
    socket.once('close', () => {
      sockets.delete(socket);
      const left = (peers.get(peer) ?? 1) - 1;
      if (left > 0) peers.set(peer, left);
      else peers.delete(peer);
      openGauge.set(sockets.size);
    });
  });

  const deadlines = [options.handshakeBytes > 0 ? options.handshakeTimeoutMs : 0, options.idleTimeoutMs].filter((ms) => ms > 0);
  let timer: NodeJS.Timeout | undefined;
  if (deadlines.length > 0) {
    // One sweep for every connection, often enough to close one within a quarter of its deadline.
    timer = setInterval(
      () => {
        const now = Date.now();
        for (const [socket, s] of sockets) {
          const read = socket.bytesRead;
          if (read !== s.read) {
            s.read = read;
            s.activeAt = now;
          }
          const reason = options.handshakeBytes > 0 && read < options.handshakeBytes && now - s.at >= options.handshakeTimeoutMs ? 'handshake' : options.idleTimeoutMs > 0 && now - s.activeAt >= options.idleTimeoutMs ? 'idle' : undefined;
          if (!reason) continue;
          closed.inc({ ...labels, reason });
          socket.destroy();
        }
      },
      Math.max(50, Math.min(1_000, Math.min(...deadlines) / 4)),
    );
    timer.unref();
  }

  return {
    get open() {
      return sockets.size;
    },
    destroyAll() {
      for (const socket of sockets.keys()) socket.destroy();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
