/**
 * A connection flood against an agent process under a low open-file limit: the listeners' caps are
 * lowered to leave server.fd_reserve descriptors free, so the write-ahead log and the embedded
 * engine keep their files, probes answer and data sent meanwhile lands.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { ExportTraceServiceRequestSchema } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { QueryService } from '../../src/gen/heimdall/v1/query_pb.js';
import { startAgentProcess, type AgentProcess } from '../support/agent-process.js';
import { traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const OPEN_FILES = 1500;

/** Opens a connection from 127.0.0.2 and writes `first`; undefined when it is not accepted within 2 s. */
function open(port: number, first?: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, 2_000);
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('connect', () => {
      clearTimeout(timer);
      if (first) socket.write(first);
      resolve(socket);
    });
    socket.once('error', () => resolve(undefined));
  });
}

describe('file descriptors: a connection flood leaves the agent its own files', () => {
  const dir = tempDir();
  let agent: AgentProcess;
  let client: AgentClient;
  const held: Socket[] = [];
  beforeAll(async () => {
    const config = join(dir.path, 'agent.yaml');
    // Long deadlines: the flood holds its connections while the test looks.
    writeFileSync(
      config,
      [
        'log: { level: info }',
        'server:',
        '  grpc: { address: "127.0.0.1:0", handshake_timeout: 120s }',
        '  otlp_http: { address: "127.0.0.1:0", headers_timeout: 120s, request_timeout: 120s }',
        '  admin: { address: "127.0.0.1:0", headers_timeout: 120s, request_timeout: 120s }',
        '  ratelimit: { address: "127.0.0.1:0" }',
        `storage: { embedded: { path: "${join(dir.path, 'data')}" } }`,
        `ingest: { ack: queued, queue: { path: "${join(dir.path, 'queue')}" } }`,
        'jobs: { system_check: { enabled: false } }',
        'shutdown: { drain: 0s }',
      ].join('\n'),
    );
    agent = await startAgentProcess(config, { openFiles: OPEN_FILES });
    client = connect({ addr: agent.addr, timeoutMs: 10_000 });
  }, 60_000);
  afterAll(async () => {
    for (const s of held) s.destroy();
    client.close();
    await agent.stop();
    dir.cleanup();
  });

  it(`under ulimit -n ${OPEN_FILES}: caps lowered, ${OPEN_FILES} connections to each listener leave fds free; probes, queued writes and queries go on`, async () => {
    const lowered = agent.lines.find((l) => l.msg === 'max_connections (and reserved_connections with them) lowered to fit the open-file limit (ulimit -n) minus server.fd_reserve') as { maxConnections: Record<string, number>; reservedConnections: Record<string, number> } | undefined;
    expect(lowered?.maxConnections).toEqual({ grpc: 152, otlp_http: 152, ratelimit: 152, admin: 19 });
    // The reserves (8, 8, 8, 16 by default) lowered in proportion: shared slots remain.
    expect(lowered?.reservedConnections).toEqual({ grpc: 2, otlp_http: 2, ratelimit: 2, admin: 3 });

    const flood: Array<[number, string | undefined]> = [
      [agent.ports.grpc ?? 0, undefined],
      [agent.ports.ratelimit ?? 0, undefined],
      [agent.ports.otlp_http ?? 0, 'POST /v1/traces HTTP/1.1\r\nHost: x\r\n'],
      [agent.ports.admin ?? 0, 'GET /metrics HTTP/1.1\r\nHost: x\r\n'],
    ];
    for (const [port, first] of flood) {
      for (let i = 0; i < OPEN_FILES; i += 100) {
        for (const s of await Promise.all(Array.from({ length: 100 }, () => open(port, first)))) if (s) held.push(s);
      }
    }
    const fds = (): number => readdirSync(`/proc/${agent.child.pid}/fd`).length;
    // 476 descriptors for connections at most (1500 - 1024 reserved); the rest are the agent's own.
    await until(() => fds() < OPEN_FILES - 512, 15_000, 'refused connections released');

    // A probe, a write through the queue and a query, each from another peer than the flood.
    const livez = await fetch(`http://127.0.0.1:${agent.ports.admin}/livez`, { signal: AbortSignal.timeout(10_000) });
    expect(livez.status).toBe(200);
    const traceId = Buffer.alloc(16, 0x5a);
    const body = toBinary(ExportTraceServiceRequestSchema, traceRequest('fd-flood', 3, (_, span) => void (span.traceId = new Uint8Array(traceId))));
    const sent = await fetch(`http://127.0.0.1:${agent.ports.otlp_http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body, signal: AbortSignal.timeout(10_000) });
    expect(sent.status).toBe(200);
    const trace = await until(async () => {
      const t = await client.unary(QueryService.method.getTrace, { id: { case: 'traceId', value: traceId.toString('hex') } });
      return t.spanCount === 3 ? t : undefined;
    }, 30_000, 'the spans stored');
    expect(trace.spanCount).toBe(3);
    expect(fds()).toBeLessThan(OPEN_FILES - 512);
    expect(agent.lines.filter((l) => JSON.stringify(l).includes('EMFILE'))).toEqual([]);
  }, 120_000);
});
