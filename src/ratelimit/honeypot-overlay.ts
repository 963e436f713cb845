/** What the main thread has done with the worker's hit reports (carried by each security snapshot). */
export interface HoneypotAcks {
  /** The last report number processed. */
  acked: number;
  /** Reports processed whose blocks could not be made (storage down): the worker keeps their blocks until they end. */
  failed: number[];
}

/** Blocks the worker made itself for honeypot hits, until the main thread's state has them (or they end). */
export interface HoneypotOverlay {
  /** Entities held now (expired ones included until the next block or acknowledgement). */
  readonly size: number;
  /** Blocks `entities` (`key=value`) until `expiresAt` (ms since the epoch), for report `seq`. */
  block(entities: readonly string[], expiresAt: number, seq: number): void;
  /** Whether `entity` is blocked here now. */
  has(entity: string): boolean;
  /** Whether an entry of `entries` is blocked here now. */
  blocks(entries: ReadonlyArray<{ key: string; value: string }>): boolean;
  /** Ends the blocks of processed reports (the snapshot that says so holds the main thread's blocks: the truth from now on), and expired ones. */
  acknowledge(acks: HoneypotAcks | undefined): void;
}

/** Options for createHoneypotOverlay. */
export interface HoneypotOverlayOptions {
  /** Entities held at most (default 10,000); past it (after dropping expired ones), a new block is not held here (the main thread still makes it). */
  max?: number | undefined;
  /** Wall-clock milliseconds since the epoch; default Date.now. */
  now?: (() => number) | undefined;
}

/** Creates an empty overlay. Its memory is bounded by `max` entities (each at most 1,024 characters, see honeypot-hits.ts). */
export function createHoneypotOverlay(options: HoneypotOverlayOptions = {}): HoneypotOverlay {
  const max = options.max ?? 10_000;
  const now = options.now ?? Date.now;
  const held = new Map<string, { expiresAt: number; seq: number }>();
  const dropExpired = (t: number): void => {
    for (const [entity, b] of held) if (b.expiresAt <= t) held.delete(entity);
  };
  const has = (entity: string): boolean => {
    const b = held.get(entity);
    return b !== undefined && b.expiresAt > now();
  };
  return {
    get size() {
      return held.size;
    },
    block(entities, expiresAt, seq) {
      if (held.size + entities.length > max) dropExpired(now());
      for (const entity of entities) if (held.size < max || held.has(entity)) held.set(entity, { expiresAt, seq });
    },
    has,
    blocks(entries) {
      for (const e of entries) if (has(`${e.key}=${e.value}`)) return true;
      return false;
    },
    acknowledge(acks) {
      if (held.size === 0) return;
      dropExpired(now());
      if (!acks) return;
      const failed = new Set(acks.failed);
      for (const [entity, b] of held) if (b.seq <= acks.acked && !failed.has(b.seq)) held.delete(entity);
    },
  };
}
