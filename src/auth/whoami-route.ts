import { SCOPES } from '../config/schema.js';
import type { HttpServer } from '../server/http.js';
import { sendJson } from '../server/http-router.js';
import type { Authenticator, Principal, RequiredScope } from './auth.js';

/** What GET /auth/whoami answers. */
export interface WhoAmI {
  /** Whether the agent checks tokens; false: every call is allowed without one. */
  authEnabled: boolean;
  /** Whether the request's token is known (always true with auth off). */
  authenticated: boolean;
  /** The token's name, scopes and tenant; absent with auth off or an unknown token. */
  name?: string;
  scopes?: string[];
  tenant?: string;
}

/** The principal of an `authorization` header: the first scope check it passes gives it; undefined for no or an unknown token. */
function principalOf(auth: Authenticator, authorization: string | undefined): Principal | undefined {
  for (const scope of SCOPES) {
    // admin:tenant: a tenant-bound admin token is still a known token with the admin scope.
    const result = auth.check(authorization, (scope === 'admin' ? 'admin:tenant' : scope) satisfies RequiredScope);
    if (result.ok) return result.principal;
    if (result.reason === 'unauthenticated') return undefined;
  }
  return undefined;
}

/**
 * Adds `GET /auth/whoami` to the admin listener: what the request's token may do (its name, scopes and
 * tenant), so the web console offers only that. Always 200 (an unknown token says `authenticated:
 * false`), so asking is no failed request; the token itself is never echoed or logged.
 */
export function addWhoAmIRoute(server: Pick<HttpServer, 'route'>, auth: Authenticator): void {
  server.route('GET', '/auth/whoami', (req, res) => {
    res.setHeader('cache-control', 'no-store');
    if (!auth.enabled) return sendJson(res, 200, { authEnabled: false, authenticated: true } satisfies WhoAmI);
    const p = principalOf(auth, req.headers.authorization);
    if (!p) return sendJson(res, 200, { authEnabled: true, authenticated: false } satisfies WhoAmI);
    return sendJson(res, 200, { authEnabled: true, authenticated: true, name: p.name, scopes: SCOPES.filter((s) => p.scopes.has(s)), ...(p.tenant !== undefined ? { tenant: p.tenant } : {}) } satisfies WhoAmI);
  });
}
