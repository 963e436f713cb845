import { Counter, type Registry } from 'prom-client';
import type { AutomationConfig, HoneypotConfig } from '../config/automation.js';
import { autoBlockable } from '../config/entry-patterns.js';
import type { HoneypotOverlay } from './honeypot-overlay.js';
import { shown } from './keys.js';
import type { RateLimitInput, RequestDescriptor } from './wire-request.js';

/** One honeypot hit as the worker reports it to the main thread (texts from the request are `shown`, except the entities to block). */
export interface HoneypotHitReport {
  /** Numbers the worker's reports, 1, 2, ... (the main thread acknowledges them in its security snapshots). */
  seq: number;
  honeypot: string;
  domain: string;
  /** The hit descriptor's entries, `key=value` joined with ",". */
  descriptor: string;
  /** The request's distinct entries (every descriptor's, at most MAX_SHOWN_ENTRIES), `key=value` joined with ",". */
  entries: string;
  /** The entities to block (`key=value`, in full): not allowed, not blocked already. */
  block: string[];
  /** When it was hit, ms since the epoch. */
  time: number;
}

/** Where the worker's reports go (the main thread, see protocol.ts). */
export type HoneypotHitSink = (hit: HoneypotHitReport) => void;

/** Reports posted per second at most; the rest are counted in heimdall_security_honeypot_reports_dropped_total. */
export const MAX_REPORTS_PER_SECOND = 100;
/** Entities one hit blocks at most. */
export const MAX_ENTITIES_PER_HIT = 16;
/** Request entries a report shows at most. */
const MAX_SHOWN_ENTRIES = 64;

/** Handles the hits the check finds: counts them, blocks their entities in the overlay at once, reports them. */
export interface HoneypotHits {
  hit(honeypot: HoneypotConfig, req: Pick<RateLimitInput, 'domain' | 'descriptors'>, d: Pick<RequestDescriptor, 'entries'>): void;
}

/** Options for createHoneypotHits. */
export interface HoneypotHitsOptions {
  /** `ratelimit.security.automation`: its `allow` list (entities never blocked). */
  config: Pick<AutomationConfig, 'allow'>;
  overlay: HoneypotOverlay;
  /** Whether the security replica blocks `entity` already; none: nothing is. */
  blocked?: ((entity: { key: string; value: string }) => boolean) | undefined;
  sink: HoneypotHitSink;
  /** The number after which reports are numbered (the main thread's last acknowledged, at a worker's start). */
  firstSeq?: number | undefined;
  metrics: Registry;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
}

/**
 * The entities a hit blocks: the request's entries under `block_keys`, not allowed, not too long, not
 * blocked already (at most MAX_ENTITIES_PER_HIT); and how many were blocked already.
 */
function entitiesToBlock(honeypot: HoneypotConfig, req: Pick<RateLimitInput, 'descriptors'>, options: HoneypotHitsOptions): { block: string[]; held: number } {
  const out = new Set<string>();
  let held = 0;
  for (const d of req.descriptors)
    for (const e of d.entries) {
      if (out.size >= MAX_ENTITIES_PER_HIT) break;
      if (!autoBlockable(honeypot.block_keys, options.config.allow, e.key, e.value)) continue;
      const entity = `${e.key}=${e.value}`;
      if (options.overlay.has(entity) || options.blocked?.(e)) held += 1;
      else out.add(entity);
    }
  return { block: [...out], held };
}

/** The distinct entries of `entries`, shown, joined with "," (at most `max`). */
function joined(entries: Iterable<{ key: string; value: string }>, max: number): string {
  const out = new Set<string>();
  for (const e of entries) {
    if (out.size >= max) break;
    out.add(`${e.key}=${shown(e.value)}`);
  }
  return [...out].join(',');
}

/**
 * Creates the hit handler. Every hit counts in `heimdall_security_honeypot_hits_total{honeypot}`.
 * A hit whose entities are all blocked already (here or in the replica) is not reported again (one
 * with none to block, all allowed, is); others
 * are reported at most MAX_REPORTS_PER_SECOND a second (the excess counts in
 * `heimdall_security_honeypot_reports_dropped_total`, and blocks nothing), and their entities are
 * blocked in the overlay at once, for the honeypot's block_ttl.
 */
export function createHoneypotHits(options: HoneypotHitsOptions): HoneypotHits {
  const now = options.now ?? Date.now;
  const hits = new Counter({ name: 'heimdall_security_honeypot_hits_total', help: 'Honeypot hits (request descriptors that sprang a trap, each refused), by honeypot.', labelNames: ['honeypot'] as const, registers: [options.metrics] });
  const reported = new Counter({ name: 'heimdall_security_honeypot_reports_total', help: 'Honeypot hits reported to the main thread (to block their entities and audit them).', registers: [options.metrics] });
  const dropped = new Counter({ name: 'heimdall_security_honeypot_reports_dropped_total', help: `Honeypot hits not reported: over ${MAX_REPORTS_PER_SECOND} reports a second.`, registers: [options.metrics] });
  let seq = options.firstSeq ?? 0;
  let second = 0;
  let inSecond = 0;
  return {
    hit(honeypot, req, d) {
      hits.inc({ honeypot: honeypot.name });
      const { block, held } = entitiesToBlock(honeypot, req, options);
      // Its entities are blocked already: reported once is enough.
      if (block.length === 0 && held > 0) return;
      const t = now();
      const s = Math.floor(t / 1000);
      if (s !== second) [second, inSecond] = [s, 0];
      if (inSecond >= MAX_REPORTS_PER_SECOND) return void dropped.inc();
      inSecond += 1;
      seq += 1;
      options.overlay.block(block, t + honeypot.block_ttl, seq);
      reported.inc();
      options.sink({ seq, honeypot: honeypot.name, domain: shown(req.domain), descriptor: joined(d.entries, MAX_SHOWN_ENTRIES), entries: joined(req.descriptors.flatMap((x) => x.entries), MAX_SHOWN_ENTRIES), block, time: t });
    },
  };
}
