import type { Config } from '../config/schema.js';
import type { SecurityMode } from '../gen/heimdall/v1/security_pb.js';
import type { HoneypotAcks } from './honeypot-overlay.js';

/** A block (times in ms since the epoch; expiresAt 0: never expires). */
export interface BlockRecord {
  entity: string;
  reason: string;
  expiresAt: number;
  createdAt: number;
  requestedBy: string;
  approvedBy: string;
}

/** The actor of automatic changes (honeypots, rules): it requests and executes them, with no approval. */
export const SYSTEM_ACTOR = 'system';

/**
 * heimdall.v1.SecurityMode's values, for the modules the rate-limit worker loads (importing the
 * generated file would build its descriptors there at every start); the tests check them against it.
 */
export const MODE = { UNSPECIFIED: 0 as SecurityMode.UNSPECIFIED, NORMAL: 1 as SecurityMode.NORMAL, ELEVATED: 2 as SecurityMode.ELEVATED, LOCKDOWN: 3 as SecurityMode.LOCKDOWN } as const;

/**
 * A change to the mode or the block list: what an executed action does, and what agents share
 * through Redis. A mode change says whether it pins the mode (automation then leaves it alone) and
 * who set it (absent: the configured first mode).
 */
export type PolicyChange = { kind: 'mode'; mode: SecurityMode; pinned?: boolean | undefined; by?: string | undefined } | { kind: 'block'; block: BlockRecord } | { kind: 'unblock'; entity: string };

/** The mode and the blocks in force: what the main thread replicates to the rate-limit worker. */
export interface SecuritySnapshot {
  mode: SecurityMode;
  blocks: BlockRecord[];
  /** The worker's honeypot hit reports processed so far (their blocks are in `blocks`); none: no honeypots. */
  hits?: HoneypotAcks | undefined;
}

/** What the security layer says about one descriptor before its limit is checked. */
export type Verdict = { refuse: true; reason: 'blocked' | 'lockdown' } | { refuse: false; factor: number };

/** Each mode's name, as metrics labels and logs spell it. */
export const MODE_NAMES: Record<SecurityMode, string> = {
  [MODE.UNSPECIFIED]: 'unspecified',
  [MODE.NORMAL]: 'normal',
  [MODE.ELEVATED]: 'elevated',
  [MODE.LOCKDOWN]: 'lockdown',
};

/** The modes an agent can be in, in order. */
export const MODES = [MODE.NORMAL, MODE.ELEVATED, MODE.LOCKDOWN] as const;

const MODE_BY_NAME = { normal: MODE.NORMAL, elevated: MODE.ELEVATED, lockdown: MODE.LOCKDOWN } as const;

/** Options for createSecurityPolicy. */
export interface SecurityPolicyOptions {
  /** The `ratelimit.security` section: the first mode, the elevated factor, the lockdown allow list. */
  config: Pick<Config['ratelimit']['security'], 'mode' | 'elevated_factor' | 'lockdown_allow'>;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
}

/** The mode and the block list in force, and the verdict they give a descriptor. No I/O; never throws. */
export interface SecurityPolicy {
  readonly mode: SecurityMode;
  /** The mode is pinned by an admin: automation does not change it. */
  readonly pinned: boolean;
  /** Who set the mode: an admin, SYSTEM_ACTOR, or '' (the configured first mode). */
  readonly modeSetBy: string;
  /** The blocks held, in the order first made. */
  blocks(): BlockRecord[];
  /** Applies a change; returns the mode before it when the change switched the mode. */
  apply(change: PolicyChange): SecurityMode | undefined;
  /** The verdict for a descriptor's entries: blocked (an entry is, and not expired), lockdown (no entry allowed), or the factor of its limits. */
  check(entries: ReadonlyArray<{ key: string; value: string }>): Verdict;
  /** Drops the blocks past their expiry; answers their entities. */
  dropExpired(): string[];
}

/** Creates the policy in the configured mode with no blocks. */
export function createSecurityPolicy(options: SecurityPolicyOptions): SecurityPolicy {
  const now = options.now ?? Date.now;
  const allow = new Set(options.config.lockdown_allow);
  const blocks = new Map<string, BlockRecord>();
  let mode: SecurityMode = MODE_BY_NAME[options.config.mode];
  let pinned = false;
  let modeSetBy = '';
  return {
    get mode() {
      return mode;
    },
    get pinned() {
      return pinned;
    },
    get modeSetBy() {
      return modeSetBy;
    },
    blocks: () => [...blocks.values()],
    apply(change) {
      if (change.kind === 'block') blocks.set(change.block.entity, change.block);
      else if (change.kind === 'unblock') blocks.delete(change.entity);
      else {
        pinned = change.pinned ?? false;
        modeSetBy = change.by ?? '';
        if (change.mode !== mode) {
          const before = mode;
          mode = change.mode;
          return before;
        }
      }
      return undefined;
    },
    check(entries) {
      const t = now();
      let allowed = false;
      for (const e of entries) {
        const entity = `${e.key}=${e.value}`;
        const b = blocks.get(entity);
        if (b && (b.expiresAt === 0 || b.expiresAt > t)) return { refuse: true, reason: 'blocked' };
        if (allow.has(entity)) allowed = true;
      }
      if (mode === MODE.LOCKDOWN && !allowed) return { refuse: true, reason: 'lockdown' };
      return { refuse: false, factor: mode === MODE.ELEVATED ? options.config.elevated_factor : 1 };
    },
    dropExpired() {
      const t = now();
      const dropped: string[] = [];
      for (const [entity, b] of blocks) if (b.expiresAt > 0 && b.expiresAt <= t) dropped.push(entity);
      for (const entity of dropped) blocks.delete(entity);
      return dropped;
    },
  };
}
