/** One error, mapped once per transport: gRPC status and Connect error carry the same code, message and details. */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyPack, DurationSchema, type Any } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AgentError, invalidFields, type ErrorCode } from '../../../src/errors/agent-error.js';
import { BadRequestSchema, RetryInfoSchema } from '../../../src/gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../../src/gen/google/rpc/status_pb.js';
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

describe('asGrpcError', () => {
  const details = (err: unknown): Uint8Array => (err as GrpcError).metadata?.get('grpc-status-details-bin')[0] as Buffer;
  const expected = (code: status, message: string, detail: Any): Uint8Array => toBinary(StatusSchema, create(StatusSchema, { code, message, details: [detail] }));

  it.each([0, 999, 1_000, 2_500, 60_000])('RetryInfo of %i ms: the bytes toBinary writes for the generated google.rpc.Status', (ms) => {
    const retryDelay = create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
    const want = expected(status.UNAVAILABLE, 'memory is full', anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay })));
    expect(Buffer.from(details(asGrpcError(new AgentError('unavailable', 'memory is full', ms))))).toEqual(Buffer.from(want));
  });

  it('BadRequest listing fields (an empty description omitted, as proto3 does): the bytes toBinary writes', () => {
    const violations = [
      { field: 'events[0].source', description: 'is required' },
      { field: 'events[1].payload', description: '' },
    ];
    const err = asGrpcError(invalidFields(violations)) as GrpcError;
    const want = expected(status.INVALID_ARGUMENT, err.message, anyPack(BadRequestSchema, create(BadRequestSchema, { fieldViolations: violations })));
    expect(Buffer.from(details(err))).toEqual(Buffer.from(want));
    const decoded = fromBinary(StatusSchema, details(err));
    expect(decoded.details[0]?.typeUrl).toBe('type.googleapis.com/google.rpc.BadRequest');
  });

  it('BadRequest with many long violations (lengths past one varint byte), an empty field and a long message: the bytes toBinary writes', () => {
    const violations = Array.from({ length: 40 }, (_, i) => ({ field: i === 3 ? '' : `events[${i}].attributes.${'k'.repeat(i * 5)}`, description: `is too long: ${'x'.repeat(200)}` }));
    const message = 'm'.repeat(300);
    const err = asGrpcError(new AgentError('invalid_argument', message, undefined, violations)) as GrpcError;
    const want = expected(status.INVALID_ARGUMENT, message, anyPack(BadRequestSchema, create(BadRequestSchema, { fieldViolations: violations })));
    expect(Buffer.from(details(err))).toEqual(Buffer.from(want));
  });
});
