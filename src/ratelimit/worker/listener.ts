import { Server, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Server as NetServer } from 'node:net';
import type { Registry } from 'prom-client';
import type { Config } from '../../config/schema.js';
import type { ConnectionLimit } from '../../server/connection-limit.js';
import { GRPC_CALL_FAMILIES, toStatus } from '../../server/grpc-calls.js';
import { drainGrpc, GRPC_JS_NO_CHANNELZ, listenGrpc } from '../../server/grpc-listen.js';
import type { Logger } from '../../telemetry/logger.js';
import { createPlainCounter, createPlainHistogram, type PlainSeries } from '../../telemetry/plain-histogram.js';
import type { RlsReply } from '../rls-answer.js';
import { RLS } from '../wire.js';
import type { TokenTable } from './tokens.js';

/** Options for createRlsListener. */
export interface RlsListenerOptions {
  /** `server.ratelimit`: address (port 0 picks one), TLS, message size, connection and stream bounds. */
  config: Config['server']['ratelimit'];
  reply: RlsReply;
  tokens: TokenTable;
  logger: Logger;
  /** Gets the call metrics (heimdall_grpc_server_*) and the connection metrics (`server="ratelimit"`). */
  metrics: Registry;
}

/** The worker's gRPC listener: Envoy's ShouldRateLimit only. */
export interface RlsListener {
  /** Binds; resolves with the bound port. */
  start(): Promise<number>;
  /** Refuses new calls, lets calls in flight finish for up to graceMs, then closes. Safe to call twice. */
  shutdown(graceMs: number): Promise<void>;
}

const identity = (b: Buffer): Buffer => b;
const PATH = `/${RLS.service}/${RLS.method}`;

/**
 * Creates the listener: grpc-js with identity (Buffer) serializers and one raw handler, no
 * interceptors; a call's token is checked from its metadata (scope `ratelimit`), its bytes go to
 * `reply`, and it counts in the same call families as 4317's calls (plain counters: prom-client's
 * hash the label set at every call, ~1 µs of a check's CPU). No tracing.
 */
export function createRlsListener(options: RlsListenerOptions): RlsListener {
  const { config, logger } = options;
  const registers = [options.metrics];
  const labels = { grpc_service: RLS.service, grpc_method: RLS.method };
  const started = createPlainCounter({ ...GRPC_CALL_FAMILIES.started, registers }).series(labels);
  const handledBy = createPlainCounter({ ...GRPC_CALL_FAMILIES.handled, registers });
  const durations = createPlainHistogram({ ...GRPC_CALL_FAMILIES.duration, registers });
  const duration = durations.series(labels);
  const handled = new Map<status, PlainSeries>();
  const finish = (code: status, t0: number): void => {
    let series = handled.get(code);
    if (!series) handled.set(code, (series = handledBy.series({ ...labels, grpc_code: status[code] })));
    series.count++;
    durations.observe(duration, (performance.now() - t0) / 1000);
  };
  let connections: ConnectionLimit | undefined;
  type Conn = ReturnType<ConnectionLimit['callStarted']>;
  const answered = (bytes: Uint8Array, conn: Conn, t0: number, callback: sendUnaryData<Buffer>): void => {
    connections?.callEnded(conn);
    finish(status.OK, t0);
    callback(null, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  };
  const failed = (err: unknown, conn: Conn, t0: number, callback: sendUnaryData<Buffer>): void => {
    connections?.callEnded(conn);
    const st = toStatus(err, logger, PATH);
    finish(st.code ?? status.UNKNOWN, t0);
    callback(st);
  };
  const handler = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
    const t0 = performance.now();
    started.count++;
    const conn = connections?.callStarted(call.getPeer());
    const refused = options.tokens.refusal(call.metadata.get('authorization')[0]);
    if (refused) return failed(refused, conn, t0, callback);
    let reply: Uint8Array | Promise<Uint8Array>;
    try {
      reply = options.reply(call.request);
    } catch (err) {
      return failed(err, conn, t0, callback);
    }
    // Answered at once unless a Redis decision is awaited: no promise, no microtask.
    if (reply instanceof Promise) reply.then((bytes) => answered(bytes, conn, t0, callback), (err: unknown) => failed(err, conn, t0, callback));
    else answered(reply, conn, t0, callback);
  };
  // idle_timeout ("no calls for this long") is kept by the connection limit, from the calls this
  // handler reports: grpc-js' own (`grpc.max_connection_idle_ms`) adds a close listener to every
  // stream, which cost ~10% of the peak in checks/s (bench:ratelimit, 4 alternating rounds).
  const server = new Server({
    'grpc.max_receive_message_length': config.max_recv_msg_size,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_concurrent_streams': config.max_concurrent_streams,
    'grpc.keepalive_time_ms': config.keepalive_time,
    'grpc.keepalive_timeout_ms': config.keepalive_timeout,
    ...GRPC_JS_NO_CHANNELZ,
  });
  const definition = { path: PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
  server.addService({ [RLS.method]: definition }, { [RLS.method]: handler });

  let listener: NetServer | undefined;
  let stopped = false;
  return {
    async start() {
      let port: number;
      ({ listener, connections, port } = await listenGrpc(server, config, options.metrics, logger, { name: 'ratelimit', what: 'rate-limit gRPC', idleBy: 'calls' }));
      logger.info({ address: config.address, port, tls: Boolean(config.tls) }, 'rate-limit listener serving ShouldRateLimit');
      return port;
    },
    async shutdown(graceMs) {
      if (stopped) return;
      stopped = true;
      listener?.close();
      await drainGrpc(server, graceMs);
      connections?.stop();
    },
  };
}
