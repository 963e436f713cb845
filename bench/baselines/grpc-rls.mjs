// Baseline: a bare grpc-js server answering ShouldRateLimit's method path with the agent's codec
// (@bufbuild/protobuf): it decodes the request and encodes an OK response with one descriptor status
// (the shape of the agent's answer), with no limiter and no per-call wrapper.
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, RateLimitResponse_RateLimit_Unit } from '../../dist/gen/envoy/service/ratelimit/v3/rls_pb.js';

const server = new Server();
server.addService(
  {
    ShouldRateLimit: {
      path: '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit',
      requestStream: false,
      responseStream: false,
      requestSerialize: (m) => Buffer.from(toBinary(RateLimitRequestSchema, m)),
      requestDeserialize: (b) => fromBinary(RateLimitRequestSchema, b),
      responseSerialize: (m) => Buffer.from(toBinary(RateLimitResponseSchema, m)),
      responseDeserialize: (b) => fromBinary(RateLimitResponseSchema, b),
    },
  },
  {
    ShouldRateLimit: (call, cb) =>
      cb(
        null,
        create(RateLimitResponseSchema, {
          overallCode: RateLimitResponse_Code.OK,
          statuses: call.request.descriptors.map(() => ({
            code: RateLimitResponse_Code.OK,
            currentLimit: { requestsPerUnit: 1_000_000_000, unit: RateLimitResponse_RateLimit_Unit.SECOND },
            limitRemaining: 999_999_999,
          })),
        }),
      ),
  },
);
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
