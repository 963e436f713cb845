import type { Config } from '../config/schema.js';
import type { HoneypotOverlay } from './honeypot-overlay.js';
import { createSecurityPolicy, type SecurityPolicy, type SecuritySnapshot, type Verdict } from './security-policy.js';

/** The security state as the rate-limit worker holds it: a copy of the main thread's, replaced whole on every change. */
export interface SecurityReplica extends Pick<SecurityPolicy, 'check'> {
  /** Takes the mode and blocks in force (and ends the overlay's blocks the snapshot acknowledges); the next check sees them. */
  replace(snapshot: SecuritySnapshot): void;
  /** Whether the main thread's blocks hold `entity` now. */
  blocked(entity: { key: string; value: string }): boolean;
}

const BLOCKED: Verdict = Object.freeze({ refuse: true, reason: 'blocked' });

/**
 * Creates the replica from `ratelimit.security` (its elevated factor and lockdown allow list) and the
 * first snapshot. With an `overlay` (honeypots configured), what it blocks is refused too, before the
 * main thread's state has it; an empty overlay costs one size check per call.
 */
export function createSecurityReplica(config: Config['ratelimit']['security'], first: SecuritySnapshot, overlay?: HoneypotOverlay): SecurityReplica {
  let policy: SecurityPolicy;
  const replace = (snapshot: SecuritySnapshot): void => {
    const next = createSecurityPolicy({ config });
    next.apply({ kind: 'mode', mode: snapshot.mode });
    for (const block of snapshot.blocks) next.apply({ kind: 'block', block });
    policy = next;
    overlay?.acknowledge(snapshot.hits);
  };
  replace(first);
  return {
    replace,
    check: overlay ? (entries) => (overlay.size > 0 && overlay.blocks(entries) ? BLOCKED : policy.check(entries)) : (entries) => policy.check(entries),
    blocked(entity) {
      const v = policy.check([entity]);
      return v.refuse && v.reason === 'blocked';
    },
  };
}
