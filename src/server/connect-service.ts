import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type Message, type MessageInitShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { HandlerContext, ServiceImpl as ConnectServiceImpl } from '@connectrpc/connect';
import type { CallContext, RawUnaryHandler, ServiceImpl } from './grpc-service.js';
import { createMessageQueue } from './message-queue.js';

/**
 * Runs one Connect call's handler: builds its context from the HandlerContext and maps what the
 * handler throws. Rejects only with a ConnectError. `onStreamEnd` is set for response streams: the
 * wrapper may end the stream early with an error (a revoked token).
 */
export type ConnectCallWrapper = (method: DescMethod, hctx: HandlerContext, run: (ctx: CallContext) => Promise<void>, endStream?: (err: unknown) => void) => Promise<void>;

/** Connect's shape of a unary and a server-streaming method implementation. */
type UnaryImpl = (request: Message, hctx: HandlerContext) => Promise<Message>;
type StreamImpl = (request: Message, hctx: HandlerContext) => AsyncIterable<Message>;

const toMessage = (schema: DescMessage, init: unknown): Message => create(schema, init as MessageInitShape<DescMessage>);

/** The handler's unary answer as a message: an answer already encoded (raw handlers) is decoded. */
function replyOf(schema: DescMessage, result: unknown): Message {
  return result instanceof Uint8Array ? fromBinary(schema, result) : toMessage(schema, result);
}

function unary(method: DescMethod, handler: unknown, wrap: ConnectCallWrapper): UnaryImpl {
  const raw = typeof handler === 'object' && handler !== null && 'raw' in handler ? (handler as RawUnaryHandler<unknown>) : undefined;
  const fn = handler as (request: Message, ctx: CallContext) => Promise<unknown>;
  return async (request, hctx) => {
    let reply: Message | undefined;
    await wrap(method, hctx, async (ctx) => {
      // A hot path takes wire bytes: the message Connect decoded (from JSON or binary) is encoded back.
      if (raw) {
        const bytes = Buffer.from(toBinary(method.input, request));
        ctx.requestBytes = bytes.length;
        reply = replyOf(method.output, await raw.raw(bytes, ctx));
      } else reply = replyOf(method.output, await fn(request, ctx));
    });
    return reply as Message;
  };
}

function serverStream(method: DescMethod, handler: unknown, wrap: ConnectCallWrapper): StreamImpl {
  const fn = handler as (request: Message, send: (message: unknown) => Promise<void>, ctx: CallContext) => Promise<void>;
  return (request, hctx) => {
    const queue = createMessageQueue<Message>();
    wrap(method, hctx, (ctx) => fn(request, (message) => queue.push(toMessage(method.output, message)), ctx), (err) => queue.fail(err)).then(
      () => queue.end(),
      (err: unknown) => queue.fail(err),
    );
    return queue;
  };
}

/**
 * Turns a service's implementation (the same object gRPC serves) into Connect's: unary methods
 * and server streams. Client and bidirectional streams are left out (the Connect API refuses them
 * before reading a body; see createConnectApi).
 */
export function toConnectService<T extends GenServiceMethods>(service: GenService<T>, impl: ServiceImpl<T>, wrap: ConnectCallWrapper): Partial<ConnectServiceImpl<GenService<T>>> {
  const out: Record<string, UnaryImpl | StreamImpl> = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName];
    if (method.methodKind === 'unary') out[method.localName] = unary(method, handler, wrap);
    else if (method.methodKind === 'server_streaming') out[method.localName] = serverStream(method, handler, wrap);
  }
  return out as Partial<ConnectServiceImpl<GenService<T>>>;
}
