import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { TokenDigest } from '../../auth/auth.js';
import { GrpcError } from '../../server/errors.js';

/** The API tokens as the worker's listener checks them: scope `ratelimit`, answered as 4317 answers. */
export interface TokenTable {
  /** Why a call with this `authorization` value is refused (UNAUTHENTICATED, PERMISSION_DENIED); undefined when it may go on. */
  refusal(authorization: unknown): GrpcError | undefined;
  /** Takes the tokens after a reload. */
  replace(tokens: TokenDigest[]): void;
}

/**
 * Creates the table: with no tokens (auth off) every call passes; otherwise one SHA-256 of the
 * presented token and one map lookup by its digest (the digest, not the token, is what is
 * compared: its timing says nothing a caller can use about a token it does not know).
 */
export function createTokenTable(tokens: TokenDigest[]): TokenTable {
  let byDigest = new Map<string, TokenDigest>();
  const replace = (next: TokenDigest[]): void => {
    byDigest = new Map(next.map((t) => [t.digest, t]));
  };
  replace(tokens);
  return {
    refusal(authorization) {
      if (byDigest.size === 0) return undefined;
      const m = typeof authorization === 'string' ? /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
      if (!m?.[1]) return new GrpcError(status.UNAUTHENTICATED, 'missing API token: send "authorization: Bearer <token>"');
      const token = byDigest.get(createHash('sha256').update(m[1]).digest('hex'));
      if (!token) return new GrpcError(status.UNAUTHENTICATED, 'unknown API token');
      if (!token.allowed) return new GrpcError(status.PERMISSION_DENIED, `token "${token.name}" lacks the "ratelimit" scope`);
      return undefined;
    },
    replace,
  };
}
