import { ApiError, type Api } from './api/client.js';

/** Where the token is kept: this tab's session storage only (gone when the tab closes). */
const TOKEN_KEY = 'heimdall.token';

/** What the signed-in token may do, as GET /auth/whoami says. */
export interface Access {
  /** Whether the agent checks tokens (false: no sign-in, everything allowed). */
  authEnabled: boolean;
  /** The token's name (empty with auth off). */
  name: string;
  /** SystemService, JobService, SecurityService: scope `admin`. */
  admin: boolean;
  /** QueryService (logs, events, traces): scope `query`. */
  query: boolean;
  /** The tenant a token is bound to, if any. */
  tenant: string | undefined;
}

/** Reads the stored token. */
export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/** Keeps the token for this tab, or forgets it (sign out). */
export function storeToken(token: string | undefined): void {
  if (token === undefined) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** The answer of GET /auth/whoami. */
interface WhoAmI {
  authEnabled: boolean;
  authenticated: boolean;
  name?: string;
  scopes?: string[];
  tenant?: string;
}

/**
 * Finds what the current token (or no token) may do (GET /auth/whoami: one call, always 200, so no
 * failed request shows). Rejects with ApiError `unauthenticated` when the agent needs a token and has
 * none it knows.
 */
export async function fetchAccess(api: Api, signal?: AbortSignal): Promise<Access> {
  const who = JSON.parse(await api.text('/auth/whoami', signal)) as WhoAmI;
  if (!who.authEnabled) return { authEnabled: false, name: '', admin: true, query: true, tenant: undefined };
  if (!who.authenticated) throw new ApiError('unauthenticated', 'unknown API token');
  const scopes = new Set(who.scopes ?? []);
  // A tenant-bound admin token is refused the calls on every tenant (status, scheduled jobs): the console offers it none.
  return { authEnabled: true, name: who.name ?? '', admin: scopes.has('admin') && who.tenant === undefined, query: scopes.has('query'), tenant: who.tenant };
}
