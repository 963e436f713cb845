import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { OVERFLOW } from '../telemetry/series-limits.js';
import { shown } from './keys.js';
import type { SignalCollector } from './signals.js';

/** The event type of an aggregated over-limit record. */
export const OVER_LIMIT_EVENT = 'ratelimit.over_limit';

/** One window's over-limit hits of one (domain, limit, entity) key. */
export interface OverLimitRecord {
  domain: string;
  descriptor: string;
  entity: string;
  hits: number;
}

/** Where a window's records go (the rate-limit worker posts them to the main thread, which writes them as events). */
export type OverLimitSink = (records: OverLimitRecord[]) => void;

/** Counts over-limit hits per (domain, limit, entity) and hands one record per key and window to its sink. */
export interface OverLimitReporter {
  record(domain: string, descriptor: string, entries: ReadonlyArray<{ key: string; value: string }>, hits: number): void;
  /** Writes what is counted now (on each window and at shutdown). */
  flush(): void;
  start(): void;
  shutdown(): void;
}

/** Options for createOverLimitReporter. */
export interface OverLimitOptions {
  /** `over_limit_window`: counts are written (and start again) this often; `over_limit_max_keys`: (domain, limit, entity) keys counted per window, the rest count under one overflow key. */
  config: Pick<Config['ratelimit'], 'over_limit_window' | 'over_limit_max_keys'>;
  /** Hits of one key in one window that make an incident (`ratelimit.security.incident_threshold`), counted in heimdall_ratelimit_incidents_total. */
  incidentThreshold: number;
  /** Gets each window's records (overLimitEvents writes them as events). */
  sink: OverLimitSink;
  /**
   * Gets each refusal over a limit and each incident at the hit that makes it (once per key and
   * window); not refusals by the security layer (descriptor `security:<reason>`) nor the overflow key.
   */
  signals?: Pick<SignalCollector, 'refused' | 'incident'> | undefined;
  metrics: Registry;
}

/** The descriptor under which check.ts records refusals by the security layer starts with this. */
const SECURITY_DESCRIPTOR = 'security:';

/**
 * Creates the reporter: an attack refused a million times becomes one record per entity and window
 * (written as one `ratelimit.over_limit` event by overLimitEvents), not a million rows. Its memory is bounded whatever requests carry: each text
 * of a key is `shown` (at most 57 characters), and past `over_limit_max_keys` keys in a window hits count under
 * the key whose domain, descriptor and entity are all `__overflow__`. Each written record with at least
 * `incidentThreshold` hits (an incident, as the security dashboard lists them) counts in
 * `heimdall_ratelimit_incidents_total`, which alert rules watch.
 */
export function createOverLimitReporter(options: OverLimitOptions): OverLimitReporter {
  let counts = new Map<string, OverLimitRecord>();
  let timer: NodeJS.Timeout | undefined;
  const { signals } = options;
  const incidents = new Counter({ name: 'heimdall_ratelimit_incidents_total', help: 'Over-limit records (one domain, limit and entity in one ratelimit.over_limit_window) with at least ratelimit.security.incident_threshold hits.', registers: [options.metrics] });
  const flush = (): void => {
    if (counts.size === 0) return;
    const current = counts;
    counts = new Map();
    for (const c of current.values()) if (c.hits >= options.incidentThreshold) incidents.inc();
    options.sink([...current.values()]);
  };
  return {
    record(domain, descriptor, entries, hits) {
      let fields = { domain: shown(domain), descriptor: shown(descriptor), entity: shown(entries.map((e) => `${e.key}=${e.value}`).join(',')) };
      let key = `${fields.domain}\u0000${fields.descriptor}\u0000${fields.entity}`;
      if (!counts.has(key) && counts.size >= options.config.over_limit_max_keys) {
        fields = { domain: OVERFLOW, descriptor: OVERFLOW, entity: OVERFLOW };
        key = OVERFLOW;
      }
      const added = Math.max(hits, 1);
      let c = counts.get(key);
      const before = c?.hits ?? 0;
      if (c) c.hits += added;
      else counts.set(key, (c = { ...fields, hits: added }));
      if (signals && key !== OVERFLOW && !descriptor.startsWith(SECURITY_DESCRIPTOR)) {
        signals.refused(c.entity);
        if (before < options.incidentThreshold && c.hits >= options.incidentThreshold) signals.incident({ domain: c.domain, descriptor: c.descriptor, entity: c.entity, entries });
      }
    },
    flush,
    start() {
      timer = setInterval(flush, options.config.over_limit_window);
      timer.unref();
    },
    shutdown() {
      clearInterval(timer);
      flush();
    },
  };
}
