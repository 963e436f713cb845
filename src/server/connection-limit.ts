import type { Server as NetServer, Socket } from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import { perRegistry } from '../telemetry/metrics.js';
import { createConnectionTable, sweepDeadlines, type ConnectionEntry } from './connection-table.js';

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
  /**
   * `calls`: a connection is idle while it starts no call and has none in flight (the listener
   * reports them, see ConnectionLimit.callStarted); keepalive traffic does not keep it open.
   * Default `bytes`: idle while it sends nothing.
   */
  idleBy?: 'bytes' | 'calls' | undefined;
  /**
   * Whether a connection has no request in progress (HTTP: between requests, or before the first
   * is in). With it, a connection that would be refused takes the slot of an idle connection of the
   * peer holding the most (or its own peer's oldest idle one), so a probe always gets in while
   * others only hold connections open. Without it (gRPC: calls in flight cannot be told), none is closed.
   */
  idle?: ((socket: Socket) => boolean) | undefined;
  metrics: Registry;
}

/** The connections of one listener, as limitConnections keeps them. */
export interface ConnectionLimit {
  /**
   * With `idleBy: 'calls'`: a call started on the connection from `peer` (`address:port`, as
   * grpc-js' getPeer gives it); returns what callEnded takes (undefined: no such connection).
   */
  callStarted(peer: string): ConnectionEntry | undefined;
  /** The call that callStarted returned `entry` for has ended. */
  callEnded(entry: ConnectionEntry | undefined): void;
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
      help: 'Connections closed by a deadline of limitConnections, by listener and reason (handshake: too few bytes in time; idle: nothing received, on the rate-limit listener no call, for the idle timeout).',
      labelNames: ['server', 'reason'] as const,
      registers: [registry],
    }),
    evicted: new Counter({
      name: 'heimdall_server_connections_evicted_total',
      help: 'Idle connections (no request in progress) closed at the cap to let in a connection of a peer holding fewer, by listener.',
      labelNames: ['server'] as const,
      registers: [registry],
    }),
  }));
}

/**
 * Bounds the connections of a listening (or about to listen) net server: a cap, a reserve for peers
 * holding few connections, a handshake deadline (first bytes) and an idle deadline (bytes
 * received, or calls: `idleBy`), both checked by one timer. With `idle`, a connection past the cap or the reserve
 * takes the slot of an idle connection of the peer holding the most (see the option); without it,
 * the cap is Node's `maxConnections`, so a refused connection costs no more than its accept. Call
 * before the server's own `connection` listeners run.
 */
export function limitConnections(server: NetServer, options: ConnectionLimitOptions): ConnectionLimit {
  const { open, refused, closed, evicted } = connectionMetrics(options.metrics);
  const labels = { server: options.name };
  const openGauge = open.labels(labels);
  openGauge.set(0);
  const table = createConnectionTable();
  const shared = Math.max(0, options.maxConnections - options.reserved);
  /** Connections a peer may hold and still take a reserved slot. */
  const peerReserve = Math.max(1, Math.floor(options.reserved / 2));
  const idle = options.idle;
  /** Counting calls: each connection's entry by `address:port`. */
  const byPeer = options.idleBy === 'calls' ? new Map<string, ConnectionEntry>() : undefined;

  // One over the cap reaches the listener below, to take an idle connection's slot; Node drops the rest.
  server.maxConnections = options.maxConnections + (idle ? 1 : 0);
  server.on('drop', () => refused.inc({ ...labels, reason: 'limit' }));
  server.prependListener('connection', (socket: Socket) => {
    const peer = socket.remoteAddress ?? '';
    const full = table.size >= options.maxConnections ? 'limit' : table.size >= shared && table.heldBy(peer) >= peerReserve ? 'reserved' : undefined;
    if (full) {
      const taken = idle && table.victim(peer, idle);
      if (!taken) {
        refused.inc({ ...labels, reason: full });
        socket.destroy();
        return;
      }
      table.forget(taken);
      taken.destroy();
      evicted.inc(labels);
    }
    const entry = table.add(socket, peer, Date.now());
    const key = byPeer && `${peer}:${String(socket.remotePort)}`;
    if (key) byPeer.set(key, entry);
    openGauge.set(table.size);
    socket.once('close', () => {
      table.forget(socket);
      if (key) byPeer?.delete(key);
      openGauge.set(table.size);
    });
  });
  const stop = sweepDeadlines(table, options, (reason) => closed.inc({ ...labels, reason }));

  return {
    callStarted(key) {
      const entry = byPeer?.get(key);
      if (entry) {
        entry.calls++;
        entry.inFlight++;
      }
      return entry;
    },
    callEnded(entry) {
      if (entry) entry.inFlight--;
    },
    destroyAll() {
      for (const [socket] of table.entries()) socket.destroy();
    },
    stop,
  };
}
