import type { Socket } from 'node:net';

/** What the table keeps of one open connection. */
export interface ConnectionEntry {
  /** Its remote address. */
  peer: string;
  /** When it opened (ms since the epoch). */
  at: number;
  /** Its bytes read at the last deadline check, and when they last grew (or, counting calls, when one last ran). */
  read: number;
  activeAt: number;
  /** Counting calls (see limitConnections' `idleBy`): calls started on it, as at the last check, and in flight now. */
  calls: number;
  seenCalls: number;
  inFlight: number;
}

/** The open connections of one listener, by peer. */
export interface ConnectionTable {
  readonly size: number;
  /** Connections `peer` holds now. */
  heldBy(peer: string): number;
  /** Records an open connection of `peer`, opened `now`; returns its entry. */
  add(socket: Socket, peer: string, now: number): ConnectionEntry;
  /** Forgets a connection; nothing when it is not in the table. */
  forget(socket: Socket): void;
  /**
   * The oldest connection, `isIdle` says, of the peer holding the most among those holding more
   * than `peer` (or of `peer` itself); undefined when there is none.
   */
  victim(peer: string, isIdle: (socket: Socket) => boolean): Socket | undefined;
  /** The open connections and their entries (entries may be updated in place). */
  entries(): IterableIterator<[Socket, ConnectionEntry]>;
}

/** Creates an empty connection table. */
export function createConnectionTable(): ConnectionTable {
  const sockets = new Map<Socket, ConnectionEntry>();
  /** Each peer's open connections, oldest first. */
  const peers = new Map<string, Set<Socket>>();
  return {
    get size() {
      return sockets.size;
    },
    heldBy: (peer) => peers.get(peer)?.size ?? 0,
    add(socket, peer, now) {
      const entry = { peer, at: now, read: 0, activeAt: now, calls: 0, seenCalls: 0, inFlight: 0 };
      sockets.set(socket, entry);
      const held = peers.get(peer) ?? new Set<Socket>();
      held.add(socket);
      peers.set(peer, held);
      return entry;
    },
    forget(socket) {
      const s = sockets.get(socket);
      if (!s) return;
      sockets.delete(socket);
      const held = peers.get(s.peer);
      held?.delete(socket);
      if (held?.size === 0) peers.delete(s.peer);
    },
    victim(peer, isIdle) {
      const own = peers.get(peer)?.size ?? 0;
      let found: { socket: Socket; held: number } | undefined;
      for (const [p, held] of peers) {
        if ((p !== peer && held.size <= own) || (found && held.size <= found.held)) continue;
        for (const socket of held) {
          if (!isIdle(socket)) continue;
          found = { socket, held: held.size };
          break;
        }
      }
      return found?.socket;
    },
    entries: () => sockets.entries(),
  };
}

/** The deadlines sweepDeadlines checks (ms; 0: no check). */
export interface ConnectionDeadlines {
  /** A connection that has sent fewer than `handshakeBytes` this long after it opened is closed; 0 bytes: no check. */
  handshakeTimeoutMs: number;
  handshakeBytes: number;
  /** A connection that has sent nothing (`idleBy` calls: started no call and has none in flight) for this long is closed. */
  idleTimeoutMs: number;
  /** What keeps a connection from being idle: bytes received (default), or calls (counted by the listener). */
  idleBy?: 'bytes' | 'calls' | undefined;
}

/**
 * Checks every connection of `table` against the deadlines on one timer (often enough to close one
 * within a quarter of its deadline), destroying a late one and calling `closed` with the reason.
 * Returns how to stop the timer (safe to call twice); no timer when no deadline is set.
 */
export function sweepDeadlines(table: ConnectionTable, deadlines: ConnectionDeadlines, closed: (reason: 'handshake' | 'idle') => void): () => void {
  const { handshakeTimeoutMs, handshakeBytes, idleTimeoutMs } = deadlines;
  const byCalls = deadlines.idleBy === 'calls';
  const periods = [handshakeBytes > 0 ? handshakeTimeoutMs : 0, idleTimeoutMs].filter((ms) => ms > 0);
  if (periods.length === 0) return () => undefined;
  const timer = setInterval(
    () => {
      const now = Date.now();
      for (const [socket, s] of table.entries()) {
        const read = socket.bytesRead;
        if (byCalls ? s.calls !== s.seenCalls || s.inFlight > 0 : read !== s.read) s.activeAt = now;
        s.read = read;
        s.seenCalls = s.calls;
        const reason = handshakeBytes > 0 && read < handshakeBytes && now - s.at >= handshakeTimeoutMs ? 'handshake' : idleTimeoutMs > 0 && now - s.activeAt >= idleTimeoutMs ? 'idle' : undefined;
        if (!reason) continue;
        closed(reason);
        socket.destroy();
      }
    },
    Math.max(50, Math.min(1_000, Math.min(...periods) / 4)),
  );
  timer.unref();
  return () => clearInterval(timer);
}
