import type { status } from '@grpc/grpc-js';

/** An error with a gRPC status code; thrown by handlers, mapped to the call's status once. */
export class GrpcError extends Error {
  override name = 'GrpcError';
  readonly code: status;
  constructor(code: status, message: string) {
    super(message);
    this.code = code;
  }
}
