import type { Config } from '../config/schema.js';
import { createSecurityPolicy, type SecurityPolicy, type SecuritySnapshot } from './security-policy.js';

/** The security state as the rate-limit worker holds it: a copy of the main thread's, replaced whole on every change. */
export interface SecurityReplica extends Pick<SecurityPolicy, 'check'> {
  /** Takes the mode and blocks in force; the next check sees them. */
  replace(snapshot: SecuritySnapshot): void;
}

/** Creates the replica from `ratelimit.security` (its elevated factor and lockdown allow list) and the first snapshot. */
export function createSecurityReplica(config: Config['ratelimit']['security'], first: SecuritySnapshot): SecurityReplica {
  let policy: SecurityPolicy;
  const replace = (snapshot: SecuritySnapshot): void => {
    const next = createSecurityPolicy({ config });
    next.apply({ kind: 'mode', mode: snapshot.mode });
    for (const block of snapshot.blocks) next.apply({ kind: 'block', block });
    policy = next;
  };
  replace(first);
  return {
    replace,
    check: (entries) => policy.check(entries),
  };
}
