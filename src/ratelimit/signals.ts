/**
 * What the rate-limit worker tells the main thread's automation rules (automation/engine.ts) about
 * refusals: counted per tick, bounded, posted at most once per tick and only when not empty.
 */

/** Distinct entities, and incidents, kept per tick (the rest are counted, not listed). */
export const MAX_SIGNAL_ENTITIES = 1_000;
export const MAX_SIGNAL_INCIDENTS = 1_000;

/** An incident: one (domain, limit, entity) key crossed `incident_threshold` in its over-limit window. */
export interface IncidentSignal {
  domain: string;
  descriptor: string;
  /** The entity as over-limit records show it (`key=value,...`, shortened past 64 characters). */
  entity: string;
  /** The descriptor's entries, each value `shown` (shortened past 64 characters). */
  entries: ReadonlyArray<{ key: string; value: string }>;
}

/** One tick's signals. */
export interface SecuritySignals {
  /** Descriptors refused over their limit (not those refused by a block, lockdown or a trap). */
  refusals: number;
  /** Distinct entities of those refusals (at most MAX_SIGNAL_ENTITIES). */
  entities: string[];
  /** Incidents (at most MAX_SIGNAL_INCIDENTS). */
  incidents: IncidentSignal[];
}

/** Where a tick's signals go (the worker posts them to the main thread). */
export type SignalSink = (signals: SecuritySignals) => void;

/** Counts a tick's signals in the worker and hands them to its sink. */
export interface SignalCollector {
  /** A descriptor of `entity` refused over its limit. */
  refused(entity: string): void;
  incident(incident: IncidentSignal): void;
  /** Hands on what is counted (when anything is). */
  flush(): void;
  /** Flushes every `intervalMs` (unref'd timer). */
  start(): void;
  /** Stops the timer and flushes. Safe to call twice. */
  shutdown(): void;
}

/** Options for createSignalCollector. */
export interface SignalCollectorOptions {
  sink: SignalSink;
  /** How often signals are handed on; default 1000 ms. */
  intervalMs?: number | undefined;
}

/** Creates the collector: a refusal costs a counter and, for a new entity, a set entry (none past the bound). */
export function createSignalCollector(options: SignalCollectorOptions): SignalCollector {
  let refusals = 0;
  let entities = new Set<string>();
  let incidents: IncidentSignal[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    if (refusals === 0 && incidents.length === 0) return;
    const signals: SecuritySignals = { refusals, entities: [...entities], incidents };
    refusals = 0;
    entities = new Set();
    incidents = [];
    options.sink(signals);
  };
  return {
    refused(entity) {
      refusals += 1;
      if (entities.size < MAX_SIGNAL_ENTITIES) entities.add(entity);
    },
    incident(incident) {
      if (incidents.length < MAX_SIGNAL_INCIDENTS) incidents.push(incident);
    },
    flush,
    start() {
      timer = setInterval(flush, options.intervalMs ?? 1_000);
      timer.unref();
    },
    shutdown() {
      clearInterval(timer);
      flush();
    },
  };
}
