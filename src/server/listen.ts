import type { Server } from 'node:net';
import { splitHostPort } from '../config/host-port.js';
import type { Logger } from '../telemetry/logger.js';

/** Where and as what listenOn binds. */
export interface ListenOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  /** The listener named in a bind error, e.g. `gRPC`, `admin`. */
  what: string;
  /** Logs accept errors once listening, as `errorMessage`. */
  logger: Logger;
  errorMessage: string;
}

/**
 * Binds `server` and resolves with the bound port. Rejects with "cannot listen on <address>
 * (<what>): <why>" when the address is not host:port or the bind fails. Once listening, an accept
 * error (EMFILE, ...) is logged and the server keeps serving.
 */
export async function listenOn(server: Server, { address, what, logger, errorMessage }: ListenOptions): Promise<number> {
  const hostPort = splitHostPort(address);
  if (!hostPort) throw new Error(`cannot listen on ${address} (${what}): not host:port`);
  return new Promise<number>((resolve, reject) => {
    const failed = (err: Error): void => reject(new Error(`cannot listen on ${address} (${what}): ${err.message}`));
    server.once('error', failed);
    server.listen(hostPort.port, hostPort.host, () => {
      server.off('error', failed).on('error', (err) => logger.error({ err }, errorMessage));
      const bound = server.address();
      resolve(typeof bound === 'object' && bound ? bound.port : hostPort.port);
    });
  });
}
