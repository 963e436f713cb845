import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { apiToken, type Config, type SCOPES } from '../config/schema.js';

/** What a token allows: `ingest` (OTLP, events), `query`, `admin` (/status, SystemService), `ratelimit`. */
export type Scope = (typeof SCOPES)[number];

/** Who is calling: the token's name, scopes and tenant. */
export interface Principal {
  name: string;
  scopes: ReadonlySet<Scope>;
  /** Set for tenant-bound tokens: the caller writes and reads only this tenant's data. */
  tenant: string | undefined;
}

/** The outcome of checking a call: allowed (with the caller, when auth is on), or refused and why. */
export type AuthResult = { ok: true; principal: Principal | undefined } | { ok: false; reason: 'unauthenticated' | 'forbidden'; message: string };

/** Checks API tokens. Tokens are compared in constant time and never logged. */
export interface Authenticator {
  readonly enabled: boolean;
  /** Checks an `authorization` header (or metadata) value for a call that needs `scope`; with auth off, every call passes. */
  check(authorization: string | undefined, scope: Scope): AuthResult;
}

/** A token file that cannot be used; the message names the file and the entry at fault. */
export class TokenFileError extends Error {}

function readTokenFile(path: string): z.output<typeof apiToken>[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TokenFileError(`cannot read auth.tokens_file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    // Only the first line: the rest quotes the file, which holds secrets.
    throw new TokenFileError(`auth.tokens_file ${path} is not valid YAML: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  const result = z.array(apiToken).safeParse(parsed ?? []);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new TokenFileError(`auth.tokens_file ${path}: ${issue ? `[${issue.path.join('.')}] ${issue.message}` : 'expected a list of tokens'}`);
  }
  return result.data;
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * Creates the authenticator from the `auth` config, reading `tokens_file` when set (throws
 * TokenFileError when it cannot be used). Duplicate token values are refused.
 */
export function createAuthenticator(config: Config['auth']): Authenticator {
  const tokens = [...config.tokens, ...(config.tokens_file ? readTokenFile(config.tokens_file) : [])];
  const entries = tokens.map((t) => ({ digest: digest(t.token), principal: { name: t.name, scopes: new Set(t.scopes), tenant: t.tenant } satisfies Principal }));
  const seen = new Set<string>();
  for (const e of entries) {
    const key = e.digest.toString('hex');
    if (seen.has(key)) throw new TokenFileError(`auth: token "${e.principal.name}" has the same value as another token`);
    seen.add(key);
  }
  return {
    enabled: config.enabled,
    check(authorization, scope) {
      if (!config.enabled) return { ok: true, principal: undefined };
      const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      if (!m?.[1]) return { ok: false, reason: 'unauthenticated', message: 'missing API token: send "authorization: Bearer <token>"' };
      const presented = digest(m[1]);
      // Compare against every token, without stopping at a match: the time does not depend on which matched.
      let found: Principal | undefined;
      for (const e of entries) if (timingSafeEqual(e.digest, presented)) found ??= e.principal;
      if (!found) return { ok: false, reason: 'unauthenticated', message: 'unknown API token' };
      if (!found.scopes.has(scope)) return { ok: false, reason: 'forbidden', message: `token "${found.name}" lacks the "${scope}" scope` };
      return { ok: true, principal: found };
    },
  };
}
