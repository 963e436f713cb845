import { timestampFromMs, type Timestamp } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Principal } from '../auth/auth.js';
import { submitAgentEvents } from '../events/events.js';
import { Severity } from '../gen/heimdall/v1/events_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ActionState, SecurityMode, SecurityService, type ActionSchema, type RequestActionRequest } from '../gen/heimdall/v1/security_pb.js';
import type { HealthRegistry } from '../health/registry.js';
import { uuidv7 } from '../ids/uuidv7.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import { createRedisClient, type RedisTarget } from '../redis/client.js';
import { GrpcError } from '../server/errors.js';
import type { GrpcServer } from '../server/grpc.js';
import type { Storage } from '../storage/storage.js';
import { EVENTS, SECURITY_STATE } from '../storage/tables.js';
import type { Logger } from '../telemetry/logger.js';
import { HOUR_NS, timeRange, timestamp } from '../time/range.js';
import { OVER_LIMIT_EVENT } from './over-limit.js';

/** Options for createSecurity. */
export interface SecurityOptions {
  /** Mode at first start (later, the stored mode). */
  initialMode: 'normal' | 'elevated' | 'lockdown';
  /** Elevated mode multiplies every limit (capacity and refill) by this. */
  elevatedFactor: number;
  /** In lockdown, descriptors with one of these entries (`key=value`) are still checked; all others refused. */
  lockdownAllow: readonly string[];
  /** A pending action expires after this long. */
  approvalTtlMs: number;
  /** Over-limit hits of one entity in one window that make an incident. */
  incidentThreshold: number;
  grpc: GrpcServer;
  storage: Storage;
  /** Where audit events go (heimdall_events, through the ingest pipeline). */
  pipeline: Pipeline;
  /** With the Redis backend: blocks and mode shared with every agent on the same Redis. */
  redis?: { target: RedisTarget; keyPrefix: string } | undefined;
  logger: Logger;
  metrics: Registry;
  health: HealthRegistry;
}

/** What the security layer says about one descriptor before its limit is checked. */
export type Verdict = { refuse: true; reason: 'blocked' | 'lockdown' } | { refuse: false; factor: number };

/** The security layer: mode, block list and approvals; state kept in storage. */
export interface Security {
  readonly name: 'security';
  /** The verdict for a descriptor's entries. */
  check(entries: ReadonlyArray<{ key: string; value: string }>): Verdict;
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

const MODE_NAMES: Record<SecurityMode, string> = {
  [SecurityMode.UNSPECIFIED]: 'unspecified',
  [SecurityMode.NORMAL]: 'normal',
  [SecurityMode.ELEVATED]: 'elevated',
  [SecurityMode.LOCKDOWN]: 'lockdown',
};
const MODE_BY_NAME = { normal: SecurityMode.NORMAL, elevated: SecurityMode.ELEVATED, lockdown: SecurityMode.LOCKDOWN } as const;
const STATE_NAMES: Record<ActionState, string> = {
  [ActionState.UNSPECIFIED]: 'unspecified',
  [ActionState.PENDING]: 'pending',
  [ActionState.EXECUTED]: 'executed',
  [ActionState.REJECTED]: 'rejected',
  [ActionState.EXPIRED]: 'expired',
};

/** A stored block (times in ms since the epoch; 0: never expires). */
interface BlockRecord {
  entity: string;
  reason: string;
  expiresAt: number;
  createdAt: number;
  requestedBy: string;
  approvedBy: string;
}

/** A stored action. */
interface ActionRecord {
  id: string;
  change: { kind: 'block'; entity: string; reason: string; durationSeconds: number } | { kind: 'unblock'; entity: string } | { kind: 'mode'; mode: SecurityMode };
  state: ActionState;
  reason: string;
  requestedBy: string;
  decidedBy: string;
  createdAt: number;
  decidedAt: number;
  expiresAt: number;
}

const ts = (ms: number): Timestamp | undefined => (ms > 0 ? timestampFromMs(ms) : undefined);

function toAction(a: ActionRecord): MessageInitShape<typeof ActionSchema> {
  const change =
    a.change.kind === 'block'
      ? { case: 'block' as const, value: { entity: a.change.entity, reason: a.change.reason, durationSeconds: a.change.durationSeconds } }
      : a.change.kind === 'unblock'
        ? { case: 'unblock' as const, value: { entity: a.change.entity } }
        : { case: 'setMode' as const, value: { mode: a.change.mode } };
  return { id: a.id, change, state: a.state, reason: a.reason, requestedBy: a.requestedBy, decidedBy: a.decidedBy, createdAt: ts(a.createdAt), decidedAt: ts(a.decidedAt), expiresAt: ts(a.expiresAt) };
}

const ENTITY = /^[^=\s]{1,256}=[^\s]{1,1024}$/;

/**
 * Creates the security layer and adds `heimdall.v1.SecurityService` (scope `admin`). Every change
 * goes through an action: requested by one admin, approved (and executed) by another, or rejected,
 * or expired; each transition is stored and audited as an event (category `security`).
 */
export function createSecurity(options: SecurityOptions): Security {
  const logger = options.logger.child({ component: 'security' });
  const reporter = options.health.register('security', { gate: 'none' });
  let mode: SecurityMode = MODE_BY_NAME[options.initialMode];
  const blocks = new Map<string, BlockRecord>();
  const actions = new Map<string, ActionRecord>();
  const allow = new Set(options.lockdownAllow);
  let sweeper: NodeJS.Timeout | undefined;
  let restoring: Promise<void> | undefined;
  let stopped = false;
  const stopping = new AbortController();

  const modeGauge = new Gauge({ name: 'heimdall_security_mode', help: 'The security mode: 1 for the current one, by mode.', labelNames: ['mode'] as const, registers: [options.metrics] });
  const blockGauge = new Gauge({ name: 'heimdall_security_blocks', help: 'Entities blocked now.', registers: [options.metrics] });
  const transitions = new Counter({ name: 'heimdall_security_actions_total', help: 'Security action transitions, by state reached.', labelNames: ['state'] as const, registers: [options.metrics] });
  const report = (): void => {
    for (const m of [SecurityMode.NORMAL, SecurityMode.ELEVATED, SecurityMode.LOCKDOWN]) modeGauge.set({ mode: MODE_NAMES[m] }, m === mode ? 1 : 0);
    blockGauge.set(blocks.size);
    const pending = [...actions.values()].filter((a) => a.state === ActionState.PENDING).length;
    reporter.set('ready', `mode ${MODE_NAMES[mode]}, ${blocks.size} blocked, ${pending} pending`);
  };

  /** Stores a record (the newest version of a key wins). Throws UNAVAILABLE while storage cannot. */
  const persist = async (kind: 'mode' | 'block' | 'action', key: string, data: unknown, deleted = false): Promise<void> => {
    options.storage.requireReady('the security state cannot be saved');
    await options.storage.transport.insert(SECURITY_STATE.name, [{ Kind: kind, Key: key, Version: Date.now() * 1000 + Math.floor(Math.random() * 1000), Deleted: deleted ? 1 : 0, Data: JSON.stringify(data) }]);
  };

  /** Writes an audit event; a failure is logged, not raised (the change itself is stored). */
  const audit = (type: string, actor: string, message: string, payload: Record<string, unknown>): void =>
    submitAgentEvents(options.pipeline, [{ eventType: type, severity: type.endsWith('.executed') ? Severity.WARNING : Severity.NOTICE, category: 'security', message, actorId: actor, payload }], logger);

  /** A change to the shared state: applied here, and (with Redis) sent to every other agent. */
  type Shared = { kind: 'mode'; mode: SecurityMode } | { kind: 'block'; block: BlockRecord } | { kind: 'unblock'; entity: string };
  const apply = (s: Shared, from: string): void => {
    if (s.kind === 'block') blocks.set(s.block.entity, s.block);
    else if (s.kind === 'unblock') blocks.delete(s.entity);
    else if (s.mode !== mode) {
      logger.warn({ from: MODE_NAMES[mode], to: MODE_NAMES[s.mode], by: from }, 'security mode changed');
      mode = s.mode;
    }
    report();
  };
  const channel = options.redis ? `${options.redis.keyPrefix}security` : '';
  const publisher = options.redis ? createRedisClient({ target: options.redis.target, logger }) : undefined;
  const subscriber = options.redis ? createRedisClient({ target: options.redis.target, logger, overrides: { enableOfflineQueue: true, maxRetriesPerRequest: null } }) : undefined;
  /** Shares a change through Redis: kept in a hash (for agents that start later) and published. Best effort: the change already holds here. */
  const share = async (s: Shared): Promise<void> => {
    if (!publisher) return;
    const field = s.kind === 'mode' ? 'mode' : `block:${s.kind === 'block' ? s.block.entity : s.entity}`;
    try {
      await (s.kind === 'unblock' ? publisher.hdel(channel, field) : publisher.hset(channel, field, JSON.stringify(s)));
      await publisher.publish(channel, JSON.stringify(s));
    } catch (err) {
      logger.warn({ err, change: s.kind }, 'security change not shared through redis; other agents see it after their restart');
    }
  };

  const execute = async (a: ActionRecord, approver: string): Promise<void> => {
    const now = Date.now();
    const c = a.change;
    let s: Shared;
    if (c.kind === 'block') {
      const block: BlockRecord = { entity: c.entity, reason: c.reason || a.reason, expiresAt: c.durationSeconds > 0 ? now + c.durationSeconds * 1000 : 0, createdAt: now, requestedBy: a.requestedBy, approvedBy: approver };
      await persist('block', c.entity, block);
      s = { kind: 'block', block };
    } else if (c.kind === 'unblock') {
      await persist('block', c.entity, {}, true);
      s = { kind: 'unblock', entity: c.entity };
    } else {
      await persist('mode', 'mode', { mode: c.mode });
      s = { kind: 'mode', mode: c.mode };
    }
    apply(s, approver);
    await share(s);
  };

  const decide = async (a: ActionRecord, state: ActionState, by: string): Promise<void> => {
    const next: ActionRecord = { ...a, state, decidedBy: by, decidedAt: Date.now() };
    await persist('action', a.id, next);
    actions.set(a.id, next);
    transitions.inc({ state: STATE_NAMES[state] });
    audit(`security.action.${STATE_NAMES[state]}`, by, `${describe(next)} ${STATE_NAMES[state]} by ${by}`, { action: a.id, change: next.change });
    report();
  };

  const describe = (a: ActionRecord): string =>
    a.change.kind === 'mode' ? `set mode ${MODE_NAMES[a.change.mode]}` : `${a.change.kind} ${a.change.entity}`;

  /** Marks pending actions past their time expired and drops blocks past theirs. */
  const sweep = async (): Promise<void> => {
    const now = Date.now();
    for (const a of actions.values()) if (a.state === ActionState.PENDING && a.expiresAt <= now) await decide(a, ActionState.EXPIRED, 'heimdall').catch(() => undefined);
    for (const [entity, b] of blocks) if (b.expiresAt > 0 && b.expiresAt <= now) blocks.delete(entity);
    report();
  };

  const actor = (p: Principal | undefined): string => p?.name ?? 'anonymous';

  const pendingAction = async (id: string): Promise<ActionRecord> => {
    await sweep();
    const a = actions.get(id);
    if (!a) throw new GrpcError(status.NOT_FOUND, `id: no action ${JSON.stringify(id)}`);
    if (a.state !== ActionState.PENDING) throw new GrpcError(status.FAILED_PRECONDITION, `action ${id} is ${STATE_NAMES[a.state]}, not pending`);
    return a;
  };

  const changeOf = (req: RequestActionRequest): ActionRecord['change'] => {
    const c = req.change;
    const entity = (e: string, field: string) => {
      if (!ENTITY.test(e)) throw new GrpcError(status.INVALID_ARGUMENT, `${field}: expected a descriptor entry key=value, got ${JSON.stringify(e)}`);
      return e;
    };
    if (c.case === 'block') return { kind: 'block', entity: entity(c.value.entity, 'block.entity'), reason: c.value.reason, durationSeconds: c.value.durationSeconds };
    if (c.case === 'unblock') return { kind: 'unblock', entity: entity(c.value.entity, 'unblock.entity') };
    if (c.case === 'setMode') {
      if (!(c.value.mode in MODE_NAMES) || c.value.mode === SecurityMode.UNSPECIFIED) throw new GrpcError(status.INVALID_ARGUMENT, 'set_mode.mode: use normal, elevated or lockdown');
      return { kind: 'mode', mode: c.value.mode };
    }
    throw new GrpcError(status.INVALID_ARGUMENT, 'change: give block, unblock or set_mode');
  };

  options.grpc.addService(
    SecurityService,
    {
      async getState() {
        await sweep();
        return {
          mode,
          blocks: [...blocks.values()].map((b) => ({ entity: b.entity, reason: b.reason, expiresAt: ts(b.expiresAt), createdAt: ts(b.createdAt), requestedBy: b.requestedBy, approvedBy: b.approvedBy })),
          pendingActions: [...actions.values()].filter((a) => a.state === ActionState.PENDING).length,
        };
      },
      async requestAction(req, ctx) {
        const now = Date.now();
        const a: ActionRecord = { id: uuidv7(now), change: changeOf(req), state: ActionState.PENDING, reason: req.reason, requestedBy: actor(ctx.principal), decidedBy: '', createdAt: now, decidedAt: 0, expiresAt: now + options.approvalTtlMs };
        await persist('action', a.id, a);
        actions.set(a.id, a);
        transitions.inc({ state: 'pending' });
        audit('security.action.requested', a.requestedBy, `${describe(a)} requested by ${a.requestedBy}: ${a.reason}`, { action: a.id, change: a.change });
        report();
        return { action: toAction(a) };
      },
      async approveAction(req, ctx) {
        const a = await pendingAction(req.id);
        const by = actor(ctx.principal);
        if (by === a.requestedBy) throw new GrpcError(status.PERMISSION_DENIED, `action ${a.id} must be approved by an admin other than the one who requested it (${by})`);
        await execute(a, by);
        await decide(a, ActionState.EXECUTED, by);
        return { action: toAction(actions.get(a.id) ?? a) };
      },
      async rejectAction(req, ctx) {
        const a = await pendingAction(req.id);
        await decide({ ...a, reason: req.reason || a.reason }, ActionState.REJECTED, actor(ctx.principal));
        return { action: toAction(actions.get(a.id) ?? a) };
      },
      async getDashboard(req) {
        await sweep();
        const { start, end } = timeRange(req.startTime, req.endTime, HOUR_NS);
        const top = req.top === 0 ? 10 : Math.min(req.top, 1000);
        options.storage.requireReady('the dashboard cannot be read');
        const params = { type: OVER_LIMIT_EVENT, start: start.toString(), end: end.toString(), top, threshold: options.incidentThreshold };
        const from = `(SELECT Timestamp, JSONExtractString(Payload, 'domain') AS domain, JSONExtractString(Payload, 'descriptor') AS descriptor, JSONExtractString(Payload, 'entity') AS entity, JSONExtractUInt(Payload, 'hits') AS hits FROM ${EVENTS.name} WHERE EventType = {type:String} AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({end:Int64}))`;
        const q = options.storage.transport.query.bind(options.storage.transport);
        const [byLimit, entities, incidents] = await Promise.all([
          q<{ domain: string; descriptor: string; hits: string }>(`SELECT domain, descriptor, sum(hits) AS hits FROM ${from} GROUP BY domain, descriptor ORDER BY hits DESC, domain, descriptor LIMIT 1000`, params),
          q<{ entity: string; hits: string }>(`SELECT entity, sum(hits) AS hits FROM ${from} GROUP BY entity ORDER BY hits DESC, entity LIMIT {top:UInt32}`, params),
          q<{ ts: string; domain: string; descriptor: string; entity: string; hits: string }>(
            `SELECT toString(toUnixTimestamp64Nano(Timestamp)) AS ts, domain, descriptor, entity, hits FROM ${from} WHERE hits >= {threshold:UInt64} ORDER BY hits DESC, ts DESC LIMIT {top:UInt32}`,
            params,
          ),
        ]);
        return {
          startTime: timestamp(start),
          endTime: timestamp(end),
          mode,
          blocks: [...blocks.values()].map((b) => ({ entity: b.entity, reason: b.reason, expiresAt: ts(b.expiresAt), createdAt: ts(b.createdAt), requestedBy: b.requestedBy, approvedBy: b.approvedBy })),
          pendingActions: [...actions.values()].filter((a) => a.state === ActionState.PENDING).map(toAction),
          overLimit: byLimit.map((r) => ({ domain: r.domain, descriptor: r.descriptor, hits: BigInt(r.hits) })),
          topEntities: entities.map((r) => ({ entity: r.entity, hits: BigInt(r.hits) })),
          incidents: incidents.map((r) => ({ time: timestamp(BigInt(r.ts)), domain: r.domain, descriptor: r.descriptor, entity: r.entity, hits: BigInt(r.hits) })),
        };
      },
      async listActions(req) {
        await sweep();
        const list = [...actions.values()].filter((a) => req.state === ActionState.UNSPECIFIED || a.state === req.state).sort((x, y) => y.createdAt - x.createdAt);
        return { actions: list.map(toAction) };
      },
    },
    'admin',
  );

  /** Loads the stored state once storage is ready (retrying in the background until then). */
  const restore = async (): Promise<void> => {
    if (!(await options.storage.whenReady(stopping.signal)) || stopped) return;
    const rows = await options.storage.transport.query<{ Kind: string; Key: string; Data: string }>(`SELECT Kind, Key, Data FROM ${SECURITY_STATE.name} FINAL WHERE Deleted = 0`);
    for (const r of rows) {
      const data = JSON.parse(r.Data) as Record<string, unknown>;
      if (r.Kind === 'mode') mode = Number(data.mode);
      else if (r.Kind === 'block') blocks.set(r.Key, data as unknown as BlockRecord);
      else if (r.Kind === 'action') actions.set(r.Key, data as unknown as ActionRecord);
    }
    // Shared state in Redis is newer than what this agent stored: it wins.
    if (publisher) {
      const shared = await publisher.hgetall(channel).catch((err: unknown) => {
        logger.warn({ err }, 'cannot read the shared security state from redis');
        return {};
      });
      for (const text of Object.values(shared)) apply(JSON.parse(text) as Shared, 'redis');
    }
    logger.info({ mode: MODE_NAMES[mode], blocks: blocks.size, actions: actions.size }, 'security state restored');
    await sweep();
  };

  return {
    name: 'security',
    check(entries) {
      const now = Date.now();
      let allowed = false;
      for (const e of entries) {
        const entity = `${e.key}=${e.value}`;
        const b = blocks.get(entity);
        if (b && (b.expiresAt === 0 || b.expiresAt > now)) return { refuse: true, reason: 'blocked' };
        if (allow.has(entity)) allowed = true;
      }
      if (mode === SecurityMode.LOCKDOWN && !allowed) return { refuse: true, reason: 'lockdown' };
      return { refuse: false, factor: mode === SecurityMode.ELEVATED ? options.elevatedFactor : 1 };
    },
    async start() {
      report();
      if (subscriber) {
        subscriber.on('message', (_channel: string, text: string) => {
          try {
            apply(JSON.parse(text) as Shared, 'redis');
          } catch (err) {
            logger.warn({ err }, 'ignoring a malformed shared security change');
          }
        });
        void subscriber.subscribe(channel).catch((err: unknown) => logger.warn({ err }, 'cannot subscribe to shared security changes'));
      }
      restoring = restore().catch((err: unknown) => {
        reporter.set('degraded', `security state not restored: ${(err as Error).message}`);
        logger.error({ err }, 'cannot restore the security state');
      });
      sweeper = setInterval(() => void sweep(), 10_000);
      sweeper.unref();
    },
    async shutdown() {
      stopped = true;
      stopping.abort();
      clearInterval(sweeper);
      await restoring;
      publisher?.disconnect();
      subscriber?.disconnect();
      reporter.set('stopping');
    },
  };
}
