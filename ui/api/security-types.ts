/** The proto3 JSON shapes of SecurityService's answers (see types.ts: absent fields are defaults, 64-bit integers are strings). */

/** `SECURITY_MODE_NORMAL`, `SECURITY_MODE_ELEVATED`, `SECURITY_MODE_LOCKDOWN`. */
export type SecurityMode = string;

export interface Block {
  entity?: string;
  reason?: string;
  expiresAt?: string;
  createdAt?: string;
  requestedBy?: string;
  approvedBy?: string;
}

export interface Action {
  id?: string;
  block?: { entity?: string; reason?: string; durationSeconds?: number };
  unblock?: { entity?: string };
  setMode?: { mode?: SecurityMode; pin?: boolean };
  /** `ACTION_STATE_PENDING`, `..._EXECUTED`, `..._REJECTED`, `..._EXPIRED`. */
  state?: string;
  reason?: string;
  requestedBy?: string;
  decidedBy?: string;
  createdAt?: string;
  decidedAt?: string;
  expiresAt?: string;
}

export interface GetStateResponse {
  mode?: SecurityMode;
  blocks?: Block[];
  pendingActions?: number;
  /** Automation does not change a pinned mode. */
  pinned?: boolean;
  /** An admin, `system` (automation), or absent (the configured first mode). */
  modeSetBy?: string;
}

export interface ListActionsResponse {
  actions?: Action[];
}

export interface ActionResponse {
  action?: Action;
}

export interface OverLimitCount {
  domain?: string;
  descriptor?: string;
  hits?: string;
}

export interface EntityCount {
  entity?: string;
  hits?: string;
}

export interface Incident {
  time?: string;
  domain?: string;
  descriptor?: string;
  entity?: string;
  hits?: string;
}

export interface HoneypotHit {
  time?: string;
  honeypot?: string;
  domain?: string;
  /** The hit descriptor's entries, `key=value` joined with ",". */
  entries?: string;
  /** The entities blocked for it. */
  blocked?: string[];
}

export interface GetDashboardResponse {
  startTime?: string;
  endTime?: string;
  mode?: SecurityMode;
  blocks?: Block[];
  pendingActions?: Action[];
  overLimit?: OverLimitCount[];
  topEntities?: EntityCount[];
  incidents?: Incident[];
  honeypotHits?: HoneypotHit[];
  /** Actions automation executed in the window (by `system`), newest first. */
  automaticActions?: Action[];
}
