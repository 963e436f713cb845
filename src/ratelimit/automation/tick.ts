import { MAX_SIGNAL_ENTITIES, MAX_SIGNAL_INCIDENTS, type SecuritySignals } from '../signals.js';

/** Signals of one kind in one tick: how many, and from which distinct entities (at most 1,000 listed). */
export interface SignalCount {
  count: number;
  entities: string[];
}

/** One entity's incidents in one tick, with the entries of the first. */
export interface EntityIncidents {
  count: number;
  entries: ReadonlyArray<{ key: string; value: string }>;
}

/** What arrived since the last evaluation. */
export interface TickSignals {
  refusals: SignalCount;
  incidents: SignalCount;
  honeypotHits: SignalCount;
  /** Incidents by entity (at most 1,000 entities). */
  byEntity: Map<string, EntityIncidents>;
}

/** Collects the signals of one tick (from the worker and from honeypots) until the engine takes them. */
export interface TickCollector {
  signals(s: SecuritySignals): void;
  honeypotHits(count: number, entities: readonly string[]): void;
  /** What arrived since the last take, and starts again. */
  take(): TickSignals;
}

/** A set that stops growing at `max`. */
const addBounded = (set: Set<string>, values: readonly string[], max: number): void => {
  for (const v of values) if (set.size < max) set.add(v);
};

/** Creates the collector: counts add up, distinct entities and incident entities are bounded (1,000 each per tick). */
export function createTickCollector(): TickCollector {
  const fresh = () => ({ refusals: 0, refusalEntities: new Set<string>(), incidents: 0, incidentEntities: new Set<string>(), hits: 0, hitEntities: new Set<string>(), byEntity: new Map<string, EntityIncidents>() });
  let tick = fresh();
  return {
    signals(s) {
      tick.refusals += s.refusals;
      addBounded(tick.refusalEntities, s.entities, MAX_SIGNAL_ENTITIES);
      for (const i of s.incidents) {
        tick.incidents += 1;
        if (tick.incidentEntities.size < MAX_SIGNAL_ENTITIES) tick.incidentEntities.add(i.entity);
        const e = tick.byEntity.get(i.entity);
        if (e) e.count += 1;
        else if (tick.byEntity.size < MAX_SIGNAL_INCIDENTS) tick.byEntity.set(i.entity, { count: 1, entries: i.entries });
      }
    },
    honeypotHits(count, entities) {
      tick.hits += Math.max(0, count);
      addBounded(tick.hitEntities, entities, MAX_SIGNAL_ENTITIES);
    },
    take() {
      const t = tick;
      tick = fresh();
      return {
        refusals: { count: t.refusals, entities: [...t.refusalEntities] },
        incidents: { count: t.incidents, entities: [...t.incidentEntities] },
        honeypotHits: { count: t.hits, entities: [...t.hitEntities] },
        byEntity: t.byEntity,
      };
    },
  };
}
