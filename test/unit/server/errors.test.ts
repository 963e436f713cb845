/** One error, mapped once per transport: gRPC status and Connect error carry the same code, message and details. */
import { Code, ConnectError } from '@connectrpc/connect';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AgentError, invalidFields, type ErrorCode } from '../../../src/errors/agent-error.js';
import { BadRequestSchema, RetryInfoSchema } from '../../../src/gen/google/rpc/error_details_pb.js';
import { asConnectError } from '../../../src/server/connect-errors.js';
import { asGrpcError, GrpcError } from '../../../src/server/errors.js';

const CODES: Record<ErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
};

describe('asConnectError', () => {
  it.each(Object.entries(CODES))('maps %s to the Connect code numbered as its gRPC status, with the same message', (code, connectCode) => {
    const err = new AgentError(code as ErrorCode, `why ${code}`);
    const c = asConnectError(err) as ConnectError;
    const g = asGrpcError(err) as GrpcError;
    expect(c).toBeInstanceOf(ConnectError);
    expect(c.code).toBe(connectCode);
    expect(c.code as number).toBe(g.code);
    expect(c.rawMessage).toBe(g.message);
  });

  it('carries RetryInfo when the error says when to retry, and BadRequest when it names fields', () => {
    const busy = asConnectError(new AgentError('unavailable', 'memory is full', 2_500)) as ConnectError;
    const [retry] = busy.findDetails(RetryInfoSchema);
    expect(retry?.retryDelay).toMatchObject({ seconds: 2n, nanos: 500_000_000 });
    const invalid = asConnectError(invalidFields([{ field: 'events[0].source', description: 'is required' }])) as ConnectError;
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.rawMessage).toBe('events[0].source: is required');
    expect(invalid.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.description])).toEqual([['events[0].source', 'is required']]);
  });

  it('keeps the code of a GrpcError and leaves anything else as it is', () => {
    const c = asConnectError(new GrpcError(status.RESOURCE_EXHAUSTED, '512 streams are open')) as ConnectError;
    expect([c.code, c.rawMessage]).toEqual([Code.ResourceExhausted, '512 streams are open']);
    const bug = new Error('a bug');
    expect(asConnectError(bug)).toBe(bug);
  });
});
