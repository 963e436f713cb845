import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../../src/auth/auth.js';
import { createHealthRegistry } from '../../../../src/health/registry.js';
import { createTokenTable } from '../../../../src/ratelimit/worker/tokens.js';
import { silentLogger } from '../../../support/temp.js';

const auth = (enabled: boolean) =>
  createAuthenticator(
    { enabled, tokens: [{ name: 'envoy', token: 'ratelimit-token-000001', scopes: ['ratelimit'] }, { name: 'reader', token: 'query-token-0000000001', scopes: ['query'] }] },
    { logger: silentLogger(), health: createHealthRegistry(), metrics: new Registry() },
  );

describe('the worker listener token table', () => {
  it('refuses as the authenticator does, from the digests only (UNAUTHENTICATED, PERMISSION_DENIED)', () => {
    const digests = auth(true).digests('ratelimit');
    expect(JSON.stringify(digests)).not.toContain('ratelimit-token');
    const table = createTokenTable(digests);
    expect(table.refusal(undefined)?.code).toBe(status.UNAUTHENTICATED);
    expect(table.refusal('Bearer nope-nope-nope-nope')).toMatchObject({ code: status.UNAUTHENTICATED, message: 'unknown API token' });
    expect(table.refusal('Bearer query-token-0000000001')).toMatchObject({ code: status.PERMISSION_DENIED, message: 'token "reader" lacks the "ratelimit" scope' });
    expect(table.refusal('Bearer ratelimit-token-000001')).toBeUndefined();
    table.replace([]);
    expect(table.refusal(undefined)).toBeUndefined();
  });

  it('lets every call through with auth off', () => {
    expect(auth(false).digests('ratelimit')).toEqual([]);
    expect(createTokenTable([]).refusal(undefined)).toBeUndefined();
  });
});
