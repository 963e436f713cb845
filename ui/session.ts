import { ApiError, type Api } from './api/client.js';

/** Where the token is kept: this tab's session storage only (gone when the tab closes). */
const TOKEN_KEY = 'heimdall.token';

/** What the signed-in token may do, as found by calling the API. */
export interface Access {
  /** Whether the agent checks tokens (false: no sign-in, everything allowed). */
  authEnabled: boolean;
  /** SystemService, JobService, SecurityService approvals: scope `admin`. */
  admin: boolean;
  /** QueryService (logs, events, traces): scope `query`. */
  query: boolean;
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

/** Whether a probe call was allowed: refused for lack of scope is false; an unknown token throws. */
async function allowed(probe: Promise<unknown>): Promise<boolean> {
  try {
    await probe;
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'permission_denied') return false;
    throw err;
  }
}

/**
 * Finds what the current token (or no token) may do with one cheap call per scope: GetStatus (admin)
 * and a one-record ListLogs over the last second (query). Rejects with ApiError `unauthenticated`
 * when a token is needed or unknown.
 */
export async function probeAccess(api: Api, hasToken: boolean): Promise<Access> {
  const now = Date.now();
  const [admin, query] = await Promise.all([
    allowed(api.call('SystemService', 'GetStatus', {})),
    allowed(api.call('QueryService', 'ListLogs', { startTime: new Date(now - 1_000).toISOString(), endTime: new Date(now).toISOString(), pageSize: 1 })),
  ]);
  return { authEnabled: hasToken, admin, query };
}
