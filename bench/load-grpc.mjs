// Load process: sends one pre-encoded gRPC request message over plain HTTP/2 (gRPC framing, no
// grpc-js) with CONCURRENCY calls in flight for DURATION_MS, and prints JSON: calls ok/failed,
// latencies (ms) p50/p90/p99/max, and the wall time. The method defaults to OTLP TraceService/Export;
// MESSAGES > 1 sends that many copies per call (a client stream, such as StreamEvents).
import { connect, constants } from 'node:http2';
import { readFileSync } from 'node:fs';

const [, , target, bodyFile, durationMs, concurrency, path = '/opentelemetry.proto.collector.trace.v1.TraceService/Export', messages = '1'] = process.argv;
const message = readFileSync(bodyFile);
const one1 = Buffer.alloc(5 + message.length);
one1.writeUInt8(0, 0);
one1.writeUInt32BE(message.length, 1);
message.copy(one1, 5);
const frame = Buffer.concat(Array.from({ length: Number(messages) }, () => one1));

// Several HTTP/2 connections, as several exporters would open; streams spread over them.
const sessions = Array.from({ length: 4 }, () => {
  const s = connect(`http://${target}`);
  s.on('error', () => {});
  return s;
});
let next = 0;
const latencies = [];
let ok = 0;
let failed = 0;
const statuses = {};
const end = performance.now() + Number(durationMs);

function one() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const session = sessions[next++ % sessions.length];
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let grpcStatus;
    stream.on('trailers', (t) => (grpcStatus = t['grpc-status']));
    stream.on('response', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = h['grpc-status'];
    });
    stream.on('data', () => {});
    stream.on('close', () => {
      latencies.push(performance.now() - t0);
      if (grpcStatus === '0') ok++;
      else failed++;
      statuses[grpcStatus ?? 'none'] = (statuses[grpcStatus ?? 'none'] ?? 0) + 1;
      resolve();
    });
    stream.on('error', () => {});
    stream.end(frame);
  });
}

async function worker() {
  while (performance.now() < end) await one();
}

const t0 = performance.now();
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
const wall = (performance.now() - t0) / 1000;
for (const s of sessions) s.close();
latencies.sort((a, b) => a - b);
const p = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
process.stdout.write(JSON.stringify({ ok, failed, statuses, wall, p50: p(0.5), p90: p(0.9), p99: p(0.99), max: latencies[latencies.length - 1] }) + '\n');
