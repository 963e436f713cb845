import type { IncomingMessage } from 'node:http';
import { createGunzip, createInflate } from 'node:zlib';
import { BodyTooLarge } from '../../server/http.js';
import type { Admission } from '../pipeline/pipeline.js';

/** A body that cannot be read: an encoding not supported, compressed data that does not inflate, a client gone. */
export class UnreadableBody extends Error {
  override name = 'UnreadableBody';
}

/** Options for readAdmittedBody. */
export interface AdmittedBodyOptions {
  /** Largest body, on the wire and decompressed. */
  maxBytes: number;
  /** Reserves memory for the body before it is held. */
  admission: Pick<Admission, 'grow'>;
}

/**
 * Reads an OTLP/HTTP body (identity, gzip or deflate) into memory, admitting it before it is held:
 * an uncompressed body with a Content-Length on that length before its first byte is read; else as
 * it arrives, counting decompressed bytes as they are inflated, so a gzip bomb stops at the limit.
 * Rejects with BodyTooLarge past `maxBytes` (on the wire or decompressed), UnreadableBody, or what
 * `admission.grow` throws (RetryableError, RequestTooLarge); it then stops reading, and the caller
 * answers and closes the connection. It reads with events, not `for await`: leaving an async
 * iterator destroys the socket, and the client would see a reset (and retry) instead of the answer.
 */
export function readAdmittedBody(req: IncomingMessage, options: AdmittedBodyOptions): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  if (!['gzip', 'deflate', 'identity', ''].includes(encoding)) return Promise.reject(new UnreadableBody(`unsupported Content-Encoding ${JSON.stringify(encoding)}: use gzip, deflate or none`));
  const max = options.maxBytes;
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > max) return Promise.reject(new BodyTooLarge(`request body of ${declared} bytes exceeds the limit of ${max} bytes`));
  const inflater = encoding === 'gzip' ? createGunzip() : encoding === 'deflate' ? createInflate() : undefined;
  const upFront = !inflater && declared !== undefined;
  return new Promise<Buffer>((resolve, reject) => {
    // A throw here (the admission refused) rejects the promise before any byte is read.
    if (upFront) options.admission.grow(declared);
    const chunks: Buffer[] = [];
    let wire = 0;
    let size = 0;
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.pause();
      inflater?.destroy();
      reject(err);
    };
    /** Holds a chunk of the body (decompressed), once admitted. */
    const take = (chunk: Buffer): void => {
      if (settled) return;
      size += chunk.length;
      if (size > max) return fail(new BodyTooLarge(inflater ? `decompressed body exceeds the limit of ${max} bytes` : `request body exceeds the limit of ${max} bytes`));
      if (!upFront) {
        try {
          options.admission.grow(chunk.length);
        } catch (err) {
          return fail(err as Error);
        }
      }
      chunks.push(chunk);
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    };
    function onData(chunk: Buffer): void {
      if (!inflater) return take(chunk);
      wire += chunk.length;
      if (wire > max) return fail(new BodyTooLarge(`request body exceeds the limit of ${max} bytes`));
      if (!inflater.write(chunk)) {
        req.pause();
        inflater.once('drain', () => settled || req.resume());
      }
    }
    if (inflater) {
      inflater.on('data', take);
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
