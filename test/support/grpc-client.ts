import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { credentials, makeGenericClientConstructor, Metadata, type ChannelCredentials, type ChannelOptions, type Client, type ClientReadableStream, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';

/** A real grpc-js client for a generated service (tests only): unary calls return the reply with its metadata. */
export interface TestClient {
  unary<I extends DescMessage, O extends DescMessage>(method: string, input: I, output: O, req: MessageInitShape<I>, md?: Record<string, string>): Promise<{ reply: MessageShape<O>; headers: Metadata }>;
  serverStream<O extends DescMessage>(method: string, req: unknown, md?: Record<string, string>): ClientReadableStream<MessageShape<O>>;
  bidi<I extends DescMessage, O extends DescMessage>(method: string): ClientDuplexStream<MessageInitShape<I>, MessageShape<O>>;
  close(): void;
  raw: Client;
}

/** Creates a client for `service` at `address` (plaintext unless creds are given; `{'grpc.use_local_subchannel_pool': 1}` gives it a connection of its own). */
export function testClient<T extends GenServiceMethods>(service: GenService<T>, address: string, creds: ChannelCredentials = credentials.createInsecure(), options: ChannelOptions = {}): TestClient {
  const def: Record<string, unknown> = {};
  for (const m of service.methods) {
    def[m.name] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
      responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
      requestSerialize: (v: unknown) => Buffer.from(toBinary(m.input, create(m.input, v as never))),
      requestDeserialize: (b: Buffer) => fromBinary(m.input, b),
      responseSerialize: (v: unknown) => Buffer.from(toBinary(m.output, create(m.output, v as never))),
      responseDeserialize: (b: Buffer) => fromBinary(m.output, b),
    };
  }
  const Ctor = makeGenericClientConstructor(def as never, service.typeName);
  const client = new Ctor(address, creds, options) as Client & Record<string, (...args: unknown[]) => unknown>;
  const metadata = (md: Record<string, string> = {}) => {
    const out = new Metadata();
    for (const [k, v] of Object.entries(md)) out.set(k, v);
    return out;
  };
  return {
    raw: client,
    unary(method, _input, _output, req, md) {
      return new Promise((resolve, reject) => {
        let headers = new Metadata();
        const call = client[method]?.(req, metadata(md), (err: ServiceError | null, reply: never) => (err ? reject(err) : resolve({ reply, headers }))) as { on(e: string, l: (m: Metadata) => void): void };
        call.on('metadata', (m) => (headers = m));
      });
    },
    serverStream(method, req, md) {
      return client[method]?.(req, metadata(md)) as never;
    },
    bidi(method) {
      return client[method]?.() as never;
    },
    close: () => client.close(),
  };
}
