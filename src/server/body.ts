import type { IncomingMessage } from 'node:http';
import { createGunzip, createInflate } from 'node:zlib';

/** Largest request body the admin port's APIs read: a RateLimitRequest as JSON, a Connect request message. */
export const ADMIN_MAX_BODY_BYTES = 1 << 20;

/** A request body over its limit (on the wire or decompressed). */
export class BodyTooLarge extends Error {
  override name = 'BodyTooLarge';
}

/** A body that cannot be read: an encoding not supported, compressed data that does not inflate, a client gone. */
export class UnreadableBody extends Error {
  override name = 'UnreadableBody';
}

/** Options for readBody. */
export interface BodyOptions {
  /** Largest body, on the wire and decompressed. */
  maxBytes: number;
  /** Inflate `Content-Encoding: gzip` or `deflate`; without it, any encoding but identity is refused. */
  decompress?: boolean;
  /** Called with the size of each chunk (decompressed) before it is held; a throw refuses the body with that error. */
  take?: (bytes: number) => void;
}

/**
 * Reads a request body into memory, holding no byte before `take` accepted it, so a body that only
 * sends its headers holds nothing. Rejects with BodyTooLarge past `maxBytes` (its Content-Length
 * first, then on the wire and decompressed, so a gzip bomb stops at the limit), UnreadableBody,
 * or what `take` throws; it then stops holding the body. After BodyTooLarge the rest of the body,
 * up to twice `maxBytes` more, is read and dropped (see discardBody), so the client reads the answer.
 * It reads with events, not `for await`: leaving an async iterator destroys the socket, and the
 * client would see a reset (and retry) instead of the answer.
 */
export function readBody(req: IncomingMessage, options: BodyOptions): Promise<Buffer> {
  const max = options.maxBytes;
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  const tooLarge = (err: BodyTooLarge): Promise<never> => {
    discardBody(req, 2 * max);
    return Promise.reject(err);
  };
  if (!['identity', ''].includes(encoding) && !(options.decompress && ['gzip', 'deflate'].includes(encoding))) {
    return Promise.reject(new UnreadableBody(`unsupported Content-Encoding ${JSON.stringify(encoding)}: use ${options.decompress ? 'gzip, deflate or none' : 'none'}`));
  }
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > max) return tooLarge(new BodyTooLarge(`request body of ${declared} bytes exceeds the limit of ${max} bytes`));
  const inflater = encoding === 'gzip' ? createGunzip() : encoding === 'deflate' ? createInflate() : undefined;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let wire = 0;
    let size = 0;
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      inflater?.destroy();
      chunks.length = 0;
      if (err instanceof BodyTooLarge && !req.complete) discardBody(req, 2 * max);
      else req.pause();
      reject(err);
    };
    /** Holds a chunk of the body (decompressed), once taken. */
    const hold = (chunk: Buffer): void => {
      if (settled) return;
      size += chunk.length;
      if (size > max) return fail(new BodyTooLarge(inflater ? `decompressed body exceeds the limit of ${max} bytes` : `request body exceeds the limit of ${max} bytes`));
      try {
        options.take?.(chunk.length);
      } catch (err) {
        return fail(err as Error);
      }
      chunks.push(chunk);
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    };
    function onData(chunk: Buffer): void {
      if (!inflater) return hold(chunk);
      wire += chunk.length;
      if (wire > max) return fail(new BodyTooLarge(`request body exceeds the limit of ${max} bytes`));
      if (!inflater.write(chunk)) {
        req.pause();
        inflater.once('drain', () => settled || req.resume());
      }
    }
    if (inflater) {
      inflater.on('data', hold);
      inflater.once('end', finish);
      inflater.once('error', (err) => fail(new UnreadableBody(`cannot decompress the ${encoding} body: ${err.message}`)));
      req.once('end', () => inflater.end());
    } else req.once('end', finish);
    req.on('data', onData);
    req.once('error', fail);
    req.once('close', () => req.complete || fail(new UnreadableBody('the client closed the connection before the body was read')));
  });
}

/**
 * Reads and drops the rest of a body refused before its end, so that the client, still sending,
 * reads the answer rather than a reset connection (which exporters retry), and the connection can
 * serve its next request. Nothing is kept; past `maxBytes` more the connection is closed.
 */
export function discardBody(req: IncomingMessage, maxBytes: number): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > maxBytes) req.destroy();
  });
  req.resume();
}
