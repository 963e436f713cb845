import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { Metadata, status, type sendUnaryData, type ServerErrorResponse, type UntypedHandleCall, type ServerDuplexStream, type ServerReadableStream, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition } from '@grpc/grpc-js';
import type { Principal } from '../auth/auth.js';
import { GrpcError } from './errors.js';

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The call's correlation id (from `x-correlation-id`, or generated). */
  correlationId: string;
  /** Incoming request metadata. */
  metadata: Metadata;
  /** Aborts when the client cancels or the deadline passes; for response streams, also when the server shuts down. */
  signal: AbortSignal;
  /** Full method path, e.g. `/grpc.health.v1.Health/Check`. */
  method: string;
  /** Size of the request message on the wire (after gRPC decompression); 0 for request streams. */
  requestBytes: number;
  /** The caller, for services that need a scope while auth is on. */
  principal: Principal | undefined;
  /**
   * Gives back the memory reserved for a request message while it was read (services added with
   * `reserve`): call it once the handler holds the message under its own admission. Otherwise it
   * is given back when the call ends. Safe for any message, and twice.
   */
  releaseMessage(message: Buffer): void;
}

type Shape<D> = D extends DescMessage ? MessageShape<D> : never;
type Init<D> = D extends DescMessage ? MessageInitShape<D> : never;

/** Sends one message on a server stream; resolves when the transport can take more. */
type Send<O> = (message: O) => Promise<void>;

/**
 * A unary handler that takes the request's wire bytes and decodes them itself (for hot paths); it
 * may also answer with the reply already encoded.
 */
export interface RawUnaryHandler<O> {
  raw(request: Buffer, ctx: CallContext): Promise<O | Uint8Array>;
}

/** A client-streaming handler that takes the request messages' wire bytes and decodes them itself. */
export interface RawStreamHandler<O> {
  rawStream(requests: AsyncIterable<Buffer>, ctx: CallContext): Promise<O>;
}

type HandlerFor<M> = M extends { methodKind: 'unary'; input: infer I; output: infer O }
  ? ((request: Shape<I>, ctx: CallContext) => Promise<Init<O>>) | RawUnaryHandler<Init<O>>
  : M extends { methodKind: 'server_streaming'; input: infer I; output: infer O }
    ? (request: Shape<I>, send: Send<Init<O>>, ctx: CallContext) => Promise<void>
    : M extends { methodKind: 'client_streaming'; input: infer I; output: infer O }
      ? ((requests: AsyncIterable<Shape<I>>, ctx: CallContext) => Promise<Init<O>>) | RawStreamHandler<Init<O>>
      : M extends { methodKind: 'bidi_streaming'; input: infer I; output: infer O }
        ? (requests: AsyncIterable<Shape<I>>, send: Send<Init<O>>, ctx: CallContext) => Promise<void>
        : never;

/** The implementation of every method of a generated service, keyed by local method name. */
export type ServiceImpl<T extends GenServiceMethods> = { [K in keyof T]: HandlerFor<T[K]> };

/**
 * Wraps one call: builds its context, runs the handler and records the outcome. Rejects only with
 * a status object (`{ code, details, metadata }`) ready to be handed to grpc-js.
 */
export type CallWrapper = (
  method: DescMethod,
  metadata: Metadata,
  call: { on(event: 'cancelled', l: () => void): unknown; removeListener(event: 'cancelled', l: () => void): unknown },
  run: (ctx: CallContext) => Promise<void>,
) => Promise<void>;

function decode<D extends DescMessage>(schema: D, bytes: Buffer): MessageShape<D> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new GrpcError(status.INVALID_ARGUMENT, `malformed ${schema.typeName}: ${(err as Error).message}`);
  }
}

function encode(schema: DescMessage, init: unknown): Buffer {
  const bytes = toBinary(schema, create(schema, init as MessageInitShape<DescMessage>));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const identity = (b: Buffer): Buffer => b;

/**
 * Decodes a request stream. Iterates without `destroyOnReturn`: destroying a grpc-js duplex when its
 * read side ends would cancel the call before the handler's replies and status are sent.
 */
async function* decodeStream(schema: DescMessage | undefined, stream: ServerReadableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>): AsyncGenerator<unknown> {
  for await (const chunk of stream.iterator({ destroyOnReturn: false })) yield schema ? decode(schema, chunk as Buffer) : chunk;
}

function sender(schema: DescMessage, call: ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>): Send<unknown> {
  return (message) =>
    new Promise<void>((resolve) => {
      if (call.cancelled || call.destroyed) return resolve();
      if (call.write(encode(schema, message))) resolve();
      else call.once('drain', () => resolve());
    });
}

/**
 * Turns a generated service and its implementation into a grpc-js service definition and handlers.
 * Requests arrive as bytes and are decoded inside the wrapper, so a malformed message is answered
 * with INVALID_ARGUMENT instead of a transport error.
 */
export function toGrpcService<T extends GenServiceMethods>(
  service: GenService<T>,
  impl: ServiceImpl<T>,
  wrap: CallWrapper,
): { definition: ServiceDefinition; handlers: Record<string, UntypedHandleCall> } {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const handlers: Record<string, UntypedHandleCall> = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName];
    const raw = typeof handler === 'object' && handler !== null && 'raw' in handler ? (handler as RawUnaryHandler<unknown>) : undefined;
    const rawStream = typeof handler === 'object' && handler !== null && 'rawStream' in handler ? (handler as RawStreamHandler<unknown>) : undefined;
    const fn = handler as (...args: unknown[]) => Promise<unknown>;
    const path = `/${service.typeName}/${method.name}`;
    const requestStream = method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming';
    const responseStream = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
    definition[method.name] = {
      path,
      requestStream,
      responseStream,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: method.localName,
    };
    switch (method.methodKind) {
      case 'unary':
        handlers[method.name] = ((call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
          void wrap(method, call.metadata, call, async (ctx) => {
            ctx.requestBytes = call.request.length;
            const result = await (raw ? raw.raw(call.request, ctx) : fn(decode(method.input, call.request), ctx));
            const reply = result instanceof Uint8Array ? Buffer.from(result.buffer, result.byteOffset, result.byteLength) : encode(method.output, result);
            call.sendMetadata(responseMetadata(ctx));
            callback(null, reply);
          }).catch((err: unknown) => callback(err as ServerErrorResponse));
        }) as UntypedHandleCall;
        break;
      case 'server_streaming':
        handlers[method.name] = (call: ServerWritableStream<Buffer, Buffer>) => {
          void wrap(method, call.metadata, call, async (ctx) => {
            call.sendMetadata(responseMetadata(ctx));
            await fn(decode(method.input, call.request), sender(method.output, call), ctx);
            call.end();
          }).catch((err: unknown) => call.emit('error', err)); // grpc-js sends an emitted error as the call's status
        };
        break;
      case 'client_streaming':
        handlers[method.name] = ((call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
          void wrap(method, call.metadata, call, async (ctx) => {
            const requests = decodeStream(rawStream ? undefined : method.input, call);
            const reply = encode(method.output, await (rawStream ? rawStream.rawStream(requests as AsyncIterable<Buffer>, ctx) : fn(requests, ctx)));
            call.sendMetadata(responseMetadata(ctx));
            callback(null, reply);
          }).catch((err: unknown) => callback(err as ServerErrorResponse));
        }) as UntypedHandleCall;
        break;
      case 'bidi_streaming':
        handlers[method.name] = (call: ServerDuplexStream<Buffer, Buffer>) => {
          void wrap(method, call.metadata, call, async (ctx) => {
            call.sendMetadata(responseMetadata(ctx));
            await fn(decodeStream(method.input, call), sender(method.output, call), ctx);
            call.end();
          }).catch((err: unknown) => call.emit('error', err)); // grpc-js sends an emitted error as the call's status
        };
        break;
    }
  }
  return { definition, handlers };
}

function responseMetadata(ctx: CallContext): Metadata {
  const md = new Metadata();
  md.set('x-correlation-id', ctx.correlationId);
  return md;
}
