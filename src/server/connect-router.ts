import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DescMethod } from '@bufbuild/protobuf';
import { Code, ConnectError, createConnectRouter, createContextKey, createContextValues, type HandlerContext } from '@connectrpc/connect';
import type { UniversalHandler } from '@connectrpc/connect/protocol';
import { compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from '@connectrpc/connect-node';
import { Metadata } from '@grpc/grpc-js';
import type { Authenticator, Principal } from '../auth/auth.js';
import type { Logger } from '../telemetry/logger.js';
import { toConnectService, type ConnectCallWrapper } from './connect-service.js';
import { asConnectError } from './connect-errors.js';
import type { MessageReservation } from './grpc-admission.js';
import { revoked } from './grpc-calls.js';
import type { CallContext } from './grpc-service.js';
import type { RegisteredService } from './service-registry.js';

/** Options for createConnectRoutes. */
export interface ConnectRoutesOptions {
  /** The services served (those of the Connect API's package). */
  entries: readonly RegisteredService[];
  /** Checks tokens as gRPC does (the `authorization: Bearer` header). */
  auth: Authenticator;
  /** The Connect API's logger (component `connect`). */
  logger: Logger;
  /** Largest request message, JSON or binary, decompressed: larger is RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
}

/** The Connect handlers of the services, by request path (`/<package>.<Service>/<Method>`). */
export interface ConnectRoutes {
  /** Serves one request on the handler of `path` (one of the services' method paths). Never rejects. */
  serve(path: string, req: IncomingMessage, res: ServerResponse, correlationId: string): Promise<void>;
  /** Ends the response streams open (WatchJob) with UNAVAILABLE. Safe to call twice. */
  shutdown(): void;
}

/** What one request learnt before its handler ran: the router's correlation id, the gate's principal and reservation. */
interface CallState {
  correlationId: string;
  principal: Principal | undefined;
  reservation: MessageReservation | undefined;
}

const CALL = createContextKey<CallState | undefined>(undefined, { description: 'heimdall call' });

/** The state `serve` made for this call (never a shared default: a principal must not outlive its call). */
function stateOf(hctx: HandlerContext): CallState {
  const state = hctx.values.get(CALL);
  if (!state) throw new ConnectError('call served outside the admin route', Code.Internal);
  return state;
}

/** The request's headers as gRPC metadata, for handlers that read it (e.g. `traceparent`); a header metadata cannot hold is left out. */
function metadataOf(headers: Headers): Metadata {
  const md = new Metadata();
  headers.forEach((value, key) => {
    if (key.endsWith('-bin')) return;
    try {
      md.set(key, value);
    } catch {
      // a value gRPC metadata refuses (not printable ASCII): no handler reads such a header
    }
  });
  return md;
}

/** Maps a handler's throw to the answer: the same code and message as gRPC's; anything unknown is logged and INTERNAL. */
function toConnectError(thrown: unknown, logger: Logger, method: string): ConnectError {
  const err = asConnectError(thrown);
  if (err instanceof ConnectError) return err;
  logger.error({ err, method }, 'Connect handler failed');
  return new ConnectError('internal error', Code.Internal);
}

/**
 * The gate of a service's calls, run on the headers before the body is read: client and
 * bidirectional streams are refused (UNIMPLEMENTED: served on gRPC only, where each message is
 * admitted before it is read; browsers cannot send them anyway), then the token is checked
 * for the service's scope (UNAUTHENTICATED / PERMISSION_DENIED with gRPC's messages), then memory is
 * reserved for the message (services added with `reserve`; refused at once, with its retry delay).
 */
function gate(entry: RegisteredService, auth: Authenticator, maxMessageBytes: number, logger: Logger) {
  return (hctx: HandlerContext): void => {
    const { method } = hctx;
    if (method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming') {
      throw new ConnectError(`${method.parent.typeName}/${method.name} streams its requests, which the Connect API does not serve (browsers cannot stream a request body): call it on the gRPC port, or use a unary method`, Code.Unimplemented);
    }
    const state = stateOf(hctx);
    if (entry.scope) {
      const result = auth.check(hctx.requestHeader.get('authorization') ?? undefined, entry.scope);
      if (!result.ok) throw new ConnectError(result.message, result.reason === 'forbidden' ? Code.PermissionDenied : Code.Unauthenticated);
      state.principal = result.principal;
    }
    const reserve = entry.options.reserve;
    if (!reserve) return;
    try {
      state.reservation = reserve(maxMessageBytes);
    } catch (err) {
      throw toConnectError(err, logger, `/${method.parent.typeName}/${method.name}`);
    }
  };
}

/**
 * The wrapper a service's calls run in: their CallContext (correlation id, headers as metadata, the
 * call's abort signal, principal, reservation), errors mapped once, and for a response stream the
 * end of the stream once a tokens reload revokes its token (as on gRPC).
 */
function callWrapper(entry: RegisteredService, auth: Authenticator, logger: Logger): ConnectCallWrapper {
  return async (method: DescMethod, hctx, run, endStream) => {
    const state = stateOf(hctx);
    const path = `/${method.parent.typeName}/${method.name}`;
    let metadata: Metadata | undefined;
    const ctx: CallContext = {
      correlationId: state.correlationId,
      get metadata() {
        return (metadata ??= metadataOf(hctx.requestHeader));
      },
      signal: hctx.signal,
      method: path,
      requestBytes: Number(hctx.requestHeader.get('content-length') ?? 0) || 0,
      principal: state.principal,
      releaseMessage: () => state.reservation?.release(),
    };
    const { scope } = entry;
    const principal = state.principal;
    const stop =
      endStream && scope && principal
        ? auth.onReload(() => {
            const why = revoked(auth.check(hctx.requestHeader.get('authorization') ?? undefined, scope), principal);
            if (why) endStream(asConnectError(why));
          })
        : undefined;
    try {
      await run(ctx);
    } catch (err) {
      throw toConnectError(err, logger, path);
    } finally {
      stop?.();
    }
  };
}

/** Serves one request with its Connect handler; the reservation is given back when the response closes. */
async function serve(handler: UniversalHandler, req: IncomingMessage, res: ServerResponse, correlationId: string, logger: Logger): Promise<void> {
  const state: CallState = { correlationId, principal: undefined, reservation: undefined };
  res.once('close', () => state.reservation?.release());
  try {
    const response = await handler(universalRequestFromNodeRequest(req, res, undefined, createContextValues().set(CALL, state)));
    await universalResponseToNodeResponse(response, res);
  } catch (err) {
    // The client left mid-response (the handler's signal is aborted then): nothing to answer.
    if (ConnectError.from(err).code !== Code.Aborted) logger.warn({ err, method: handler.requestPath }, 'Connect response not sent whole');
  }
}

/**
 * Builds the Connect router (the Connect protocol, JSON and binary, unary and server streams) of the
 * services, with the same handlers, scopes, tenants and errors as on gRPC. Loaded by connect-api.ts
 * at the first Connect request: @connectrpc/connect and connect-node stay out of the agent's start.
 */
export function createConnectRoutes(options: ConnectRoutesOptions): ConnectRoutes {
  const { logger, maxMessageBytes } = options;
  const shutdown = new AbortController();
  // The Connect protocol only (no gRPC-web, no gRPC over HTTP/1.1: gRPC has its own port). The
  // flags go with each service too: connect-es reads them from the service's options alone.
  const protocols = { connect: true, grpc: false, grpcWeb: false };
  const router = createConnectRouter({
    ...protocols,
    readMaxBytes: maxMessageBytes,
    acceptCompression: [compressionGzip],
    shutdownSignal: shutdown.signal,
  });
  for (const entry of options.entries) {
    router.service(entry.service, toConnectService(entry.service, entry.impl, callWrapper(entry, options.auth, logger)), { ...protocols, requestGate: gate(entry, options.auth, maxMessageBytes, logger) });
  }
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return {
    async serve(path, req, res, correlationId) {
      const handler = handlers.get(path);
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      await serve(handler, req, res, correlationId, logger);
    },
    shutdown() {
      shutdown.abort(new ConnectError('the agent is shutting down', Code.Unavailable));
    },
  };
}
