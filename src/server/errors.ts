import type { Metadata, status } from '@grpc/grpc-js';

/** An error with a gRPC status code; thrown by handlers, mapped to the call's status once. */
export class GrpcError extends Error {
  override name = 'GrpcError';
  readonly code: status;
  /** Trailing metadata to send with the status (e.g. `grpc-status-details-bin`). */
  readonly metadata: Metadata | undefined;
  constructor(code: status, message: string, metadata?: Metadata) {
    super(message);
    this.code = code;
    this.metadata = metadata;
  }
}
