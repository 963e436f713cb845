import type { IncomingMessage, ServerResponse } from 'node:http';
import { create, toBinary, toJson, type DescMessage } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
import { BodyTooLarge, discardBody, readBody, UnreadableBody } from '../../server/body.js';
import type { HttpHandler } from '../../server/http-router.js';
import type { Logger } from '../../telemetry/logger.js';
import { RequestTooLarge, RetryableError } from '../pipeline/errors.js';
import type { Admission } from '../pipeline/admission.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { DECODED_PER_BYTE } from './decoded-size.js';
import { MalformedRequest, type OtlpIngest } from './otlp-ingest.js';
import type { Signal } from './signals.js';

/** Options for httpExport. */
export interface HttpExportOptions {
  ingest: OtlpIngest;
  pipeline: Pipeline;
  /** Largest body, on the wire and decompressed (server.otlp_http.max_body_size). */
  maxBodyBytes: number;
  /** Adds the CORS headers a request's origin gets. */
  cors(req: IncomingMessage, res: ServerResponse): void;
  logger: Logger;
}

/** An answer other than 200, with its HTTP status, the google.rpc.Status code it carries, and a retry delay. */
interface Failure {
  http: number;
  grpc: status;
  message: string;
  retryAfterMs?: number;
}

/** The answer to a request that failed with `err`; undefined for an internal error. */
function failureOf(err: unknown): Failure | undefined {
  if (err instanceof MalformedRequest || err instanceof UnreadableBody) return { http: 400, grpc: status.INVALID_ARGUMENT, message: err.message };
  if (err instanceof BodyTooLarge || err instanceof RequestTooLarge) return { http: 413, grpc: status.INVALID_ARGUMENT, message: err.message };
  if (err instanceof RetryableError) return { http: 503, grpc: status.UNAVAILABLE, message: err.message, retryAfterMs: err.retryAfterMs };
  return undefined;
}

/**
 * The OTLP/HTTP handler of one signal: POST with `application/x-protobuf` or `application/json`
 * (gzip or deflate), answered in the request's encoding. The body is admitted against the memory
 * limit as it arrives (a Content-Length that could never fit is 413 before any byte is read;
 * nothing is reserved for bytes not yet sent). Errors are google.rpc.Status bodies: 400 malformed,
 * 413 can never fit (the rest of the body, up to twice max_body_size, is read and dropped so the
 * client reads the answer), 415, 503 with Retry-After (the connection is then closed).
 */
export function httpExport<Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>, options: HttpExportOptions): HttpHandler {
  const logger = options.logger;
  return async (req, res, { principal }) => {
    options.cors(req, res);
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const json = contentType === 'application/json';
    if (!json && contentType !== 'application/x-protobuf') {
      res.writeHead(415, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`unsupported Content-Type ${JSON.stringify(contentType)}: use application/x-protobuf or application/json`);
      req.resume();
      return;
    }
    const send = (code: number, body: Uint8Array | string, headers: Record<string, string> = {}) => {
      res.writeHead(code, { 'content-type': json ? 'application/json' : 'application/x-protobuf', 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    let admission: Admission | undefined;
    try {
      const admitted = options.pipeline.admit(0, json ? DECODED_PER_BYTE.json : signal.fast ? DECODED_PER_BYTE.fast : DECODED_PER_BYTE.decoded);
      admission = admitted;
      const declared = Number(req.headers['content-length'] ?? 0);
      if (!req.headers['content-encoding'] && declared > 0 && declared <= options.maxBodyBytes) admitted.expect(declared);
      const body = await readBody(req, { maxBytes: options.maxBodyBytes, decompress: true, take: (bytes) => admitted.grow(bytes) });
      const reply = create(signal.response, await options.ingest.ingest(signal, body, json ? 'json' : 'protobuf', 'http', admitted, principal));
      send(200, json ? JSON.stringify(toJson(signal.response, reply)) : toBinary(signal.response, reply));
    } catch (err) {
      const failure = failureOf(err);
      if (!failure) logger.error({ err, path: signal.path }, 'OTLP/HTTP export failed');
      const f = failure ?? { http: 500, grpc: status.INTERNAL, message: 'internal error' };
      // A body refused before its end is not kept. A client must read a 413 (it is not to retry): the
      // rest of the body is read and dropped (readBody does it after BodyTooLarge). Otherwise the
      // connection closes after the answer: a client that sees a reset rather than the 503 retries all the same.
      if (!req.complete && !(err instanceof BodyTooLarge)) {
        if (err instanceof RequestTooLarge) discardBody(req, 2 * options.maxBodyBytes);
        else res.setHeader('connection', 'close');
      }
      const st = create(StatusSchema, { code: f.grpc, message: f.message });
      send(f.http, json ? JSON.stringify(toJson(StatusSchema, st)) : toBinary(StatusSchema, st), f.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(f.retryAfterMs / 1000)) } : {});
    } finally {
      admission?.release();
    }
  };
}
