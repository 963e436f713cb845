import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { Principal } from '../auth/auth.js';
import { AgentError, invalidFields } from '../errors/agent-error.js';
import { ActionState, SecurityMode, SecurityService, type ActionSchema, type BlockSchema, type RequestActionRequest } from '../gen/heimdall/v1/security_pb.js';
import { honeypotHitsDashboard } from '../query/honeypot-dashboard.js';
import { dashboardTop, overLimitDashboard } from '../query/over-limit-dashboard.js';
import type { ServiceRegistrar } from '../server/service-registry.js';
import type { Storage } from '../storage/storage.js';
import { HOUR_NS, timeRange, timestamp } from '../time/range.js';
import { HONEYPOT_HIT_EVENT } from './honeypots.js';
import { OVER_LIMIT_EVENT } from './over-limit.js';
import type { ActionBook, ActionChange, ActionRecord } from './security-actions.js';
import type { SecurityChanges } from './security-changes.js';
import { MODE_NAMES, SYSTEM_ACTOR, type BlockRecord, type SecurityPolicy } from './security-policy.js';

/** ListActions answers this many when the request names no limit, and at most MAX_LIST_ACTIONS. */
const DEFAULT_LIST_ACTIONS = 100;
const MAX_LIST_ACTIONS = 1_000;

/** Options for addSecurityService. */
export interface SecurityServiceOptions {
  /** Where the service is added (served on gRPC and on the admin port's Connect API). */
  services: ServiceRegistrar;
  changes: SecurityChanges;
  policy: Pick<SecurityPolicy, 'mode' | 'blocks' | 'pinned' | 'modeSetBy'>;
  book: Pick<ActionBook, 'list' | 'all'>;
  /** Where the dashboard reads over-limit events. */
  storage: Pick<Storage, 'requireReady' | 'transport'>;
  /** Over-limit hits of one entity in one window that make an incident (`ratelimit.security.incident_threshold`). */
  incidentThreshold: number;
}

const ENTITY = /^[^=\s]{1,256}=[^\s]{1,1024}$/;

const ts = (ms: number): Timestamp | undefined => (ms > 0 ? timestampFromMs(ms) : undefined);

function toAction(a: ActionRecord): MessageInitShape<typeof ActionSchema> {
  const change =
    a.change.kind === 'block'
      ? { case: 'block' as const, value: { entity: a.change.entity, reason: a.change.reason, durationSeconds: a.change.durationSeconds } }
      : a.change.kind === 'unblock'
        ? { case: 'unblock' as const, value: { entity: a.change.entity } }
        : { case: 'setMode' as const, value: { mode: a.change.mode, pin: a.change.pin ?? false } };
  return { id: a.id, change, state: a.state, reason: a.reason, requestedBy: a.requestedBy, decidedBy: a.decidedBy, createdAt: ts(a.createdAt), decidedAt: ts(a.decidedAt), expiresAt: ts(a.expiresAt) };
}

const toBlock = (b: BlockRecord): MessageInitShape<typeof BlockSchema> => ({ entity: b.entity, reason: b.reason, expiresAt: ts(b.expiresAt), createdAt: ts(b.createdAt), requestedBy: b.requestedBy, approvedBy: b.approvedBy });

/** The change a request asks for; INVALID_ARGUMENT naming the field at fault. */
function changeOf(req: RequestActionRequest): ActionChange {
  const c = req.change;
  const entity = (e: string, field: string) => {
    if (!ENTITY.test(e)) throw new AgentError('invalid_argument', `${field}: expected a descriptor entry key=value, got ${JSON.stringify(e)}`);
    return e;
  };
  if (c.case === 'block') return { kind: 'block', entity: entity(c.value.entity, 'block.entity'), reason: c.value.reason, durationSeconds: c.value.durationSeconds };
  if (c.case === 'unblock') return { kind: 'unblock', entity: entity(c.value.entity, 'unblock.entity') };
  if (c.case === 'setMode') {
    if (!(c.value.mode in MODE_NAMES) || c.value.mode === SecurityMode.UNSPECIFIED) throw new AgentError('invalid_argument', 'set_mode.mode: use normal, elevated or lockdown');
    return { kind: 'mode', mode: c.value.mode, pin: c.value.pin };
  }
  throw new AgentError('invalid_argument', 'change: give block, unblock or set_mode');
}

const actor = (p: Principal | undefined): string => p?.name ?? 'anonymous';

/** Adds `heimdall.v1.SecurityService` (scope `admin`): the state, actions and their decisions, and the dashboard. Reads sweep expired actions and blocks first. */
export function addSecurityService(options: SecurityServiceOptions): void {
  const { changes, policy, book, storage } = options;
  const pending = () => book.all().filter((a) => a.state === ActionState.PENDING);
  options.services.addService(
    SecurityService,
    {
      async getState() {
        await changes.sweep();
        return { mode: policy.mode, blocks: policy.blocks().map(toBlock), pendingActions: pending().length, pinned: policy.pinned, modeSetBy: policy.modeSetBy };
      },
      async requestAction(req, ctx) {
        return { action: toAction(await changes.request(changeOf(req), req.reason, actor(ctx.principal))) };
      },
      async approveAction(req, ctx) {
        return { action: toAction(await changes.approve(req.id, actor(ctx.principal))) };
      },
      async rejectAction(req, ctx) {
        return { action: toAction(await changes.reject(req.id, actor(ctx.principal), req.reason)) };
      },
      async getDashboard(req) {
        await changes.sweep();
        const range = timeRange(req.startTime, req.endTime, HOUR_NS);
        storage.requireReady('the dashboard cannot be read');
        const query = storage.transport.query.bind(storage.transport);
        const [dashboard, honeypotHits] = await Promise.all([overLimitDashboard(query, range, { eventType: OVER_LIMIT_EVENT, top: req.top, incidentThreshold: options.incidentThreshold }), honeypotHitsDashboard(query, range, { eventType: HONEYPOT_HIT_EVENT, top: req.top })]);
        const [fromMs, toMs] = [Number(range.start / 1_000_000n), Number(range.end / 1_000_000n)];
        const automatic = book.list(ActionState.EXECUTED).filter((a) => a.requestedBy === SYSTEM_ACTOR && a.decidedAt >= fromMs && a.decidedAt < toMs);
        return {
          startTime: timestamp(range.start),
          endTime: timestamp(range.end),
          mode: policy.mode,
          pinned: policy.pinned,
          blocks: policy.blocks().map(toBlock),
          pendingActions: pending().map(toAction),
          automaticActions: automatic.slice(0, dashboardTop(req.top)).map(toAction),
          ...dashboard,
          honeypotHits,
        };
      },
      async listActions(req) {
        if (req.limit > MAX_LIST_ACTIONS) throw invalidFields([{ field: 'limit', description: `at most ${MAX_LIST_ACTIONS}, got ${req.limit}` }]);
        await changes.sweep();
        const all = book.list(req.state);
        const limit = req.limit || DEFAULT_LIST_ACTIONS;
        return { actions: all.slice(0, limit).map(toAction), truncated: all.length > limit };
      },
    },
    'admin',
  );
}
