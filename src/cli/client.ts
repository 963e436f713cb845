import { readFileSync } from 'node:fs';
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';

/** How the CLI reaches a running agent. */
export interface ClientOptions {
  /** host:port of the agent's gRPC listener. */
  addr: string;
  /** API token, sent as `authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Use TLS; with a CA file, trust it (else the system's roots). */
  tls?: boolean | undefined;
  ca?: string | undefined;
  /** Deadline of each call, in milliseconds. */
  timeoutMs?: number | undefined;
}

/** A gRPC client of the agent's services (generated with @bufbuild), for the CLI. */
export interface AgentClient {
  /** One unary call; `metadata` adds request metadata (e.g. x-correlation-id, traceparent). */
  unary<I extends DescMessage, O extends DescMessage>(method: DescMethod & { input: I; output: O }, request: MessageInitShape<I>, metadata?: Record<string, string>): Promise<MessageShape<O>>;
  /** A server-streaming call without a deadline: `onMessage` gets every reply; resolves when the server ends the stream. */
  serverStream<I extends DescMessage, O extends DescMessage>(method: DescMethod & { input: I; output: O }, request: MessageInitShape<I>, onMessage: (reply: MessageShape<O>) => void): Promise<void>;
  close(): void;
}

/** Connects to an agent; calls fail with the server's status (e.g. UNAUTHENTICATED) as a ServiceError. */
export function connect(options: ClientOptions): AgentClient {
  const creds = options.tls ? credentials.createSsl(options.ca ? readFileSync(options.ca) : null) : credentials.createInsecure();
  const client = new Client(options.addr, creds);
  const metadata = (extra: Record<string, string> = {}): Metadata => {
    const md = new Metadata();
    if (options.token) md.set('authorization', `Bearer ${options.token}`);
    for (const [k, v] of Object.entries(extra)) md.set(k, v);
    return md;
  };
  return {
    unary(method, request, extra) {
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          `/${method.parent.typeName}/${method.name}`,
          (msg: MessageShape<typeof method.input>) => Buffer.from(toBinary(method.input, msg)),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          create(method.input, request),
          metadata(extra),
          { deadline: Date.now() + (options.timeoutMs ?? 30_000) },
          (err: ServiceError | null, reply?: MessageShape<typeof method.output>) => (err || !reply ? reject(err ?? new Error('empty reply')) : resolve(reply)),
        );
      });
    },
    serverStream(method, request, onMessage) {
      return new Promise((resolve, reject) => {
        const call = client.makeServerStreamRequest(
          `/${method.parent.typeName}/${method.name}`,
          (msg: MessageShape<typeof method.input>) => Buffer.from(toBinary(method.input, msg)),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          create(method.input, request),
          metadata(),
        );
        call.on('data', onMessage);
        call.on('error', reject);
        call.on('end', () => resolve());
      });
    },
    close: () => client.close(),
  };
}
