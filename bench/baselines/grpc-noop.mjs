// Baseline: a bare grpc-js server with a no-op unary handler at Health/Check's path (empty reply).
import { Server, ServerCredentials } from '@grpc/grpc-js';
const id = (b) => b;
const server = new Server();
server.addService(
  { Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
  { Check: (_call, cb) => cb(null, Buffer.from([0x08, 0x01])) },
);
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
