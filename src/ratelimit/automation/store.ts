/** One window's count to add to, with the distinct entities its signals came from. */
export interface WindowAdd {
  key: string;
  count: number;
  entities: readonly string[];
  /** The window's counts are dropped this long after the last add (about two windows). */
  ttlMs: number;
}

/** A window's totals after an add. */
export interface WindowTotals {
  count: number;
  /** Distinct entities (estimated by HyperLogLog when shared through Redis). */
  entities: number;
}

/**
 * What the rules engine counts and decides with: window counts, claims (each decision is made by
 * the one agent that claims it) and holds (a mode rule holds its mode while its hold lasts). In
 * memory for one agent, or in Redis for every agent on it (redis-store.ts). Never throws.
 */
export interface AutomationStore {
  /** Adds to each window; its totals, in the same order. */
  add(adds: readonly WindowAdd[]): Promise<WindowTotals[]>;
  /** Whether this agent is the first to claim `key` within ttlMs. */
  claim(key: string, ttlMs: number): Promise<boolean>;
  /** Holds `key` for ttlMs from now (a later hold replaces it). */
  hold(key: string, ttlMs: number): Promise<void>;
  /** Whether each key is held now, in the same order. */
  held(keys: readonly string[]): Promise<boolean[]>;
  shutdown(): void;
}

/** Distinct entities counted per window in memory: the largest `min_entities` a rule may ask for. */
const MAX_WINDOW_ENTITIES = 10_000;
/** Windows, and claims and holds, kept in memory (each until its time is past). */
export const MAX_MEMORY_KEYS = 100_000;

/**
 * The store of one agent, in memory. Each window, claim and hold is dropped once past its time (on
 * the next call), a window counts at most 10,000 distinct entities, and at most 100,000 windows and
 * 100,000 claims and holds are kept: past that, a new window counts only what one add brings, and
 * a new claim is refused (no decision rather than an unbounded memory).
 */
export function createMemoryStore(now: () => number): AutomationStore {
  const windows = new Map<string, { count: number; entities: Set<string>; until: number }>();
  const until = new Map<string, number>();
  let prunedAt = -Infinity;
  /** Drops what is past its time (at most once a second: each pass reads every key). */
  const prune = (t: number): void => {
    if (t - prunedAt < 1_000) return;
    prunedAt = t;
    for (const [k, w] of windows) if (w.until <= t) windows.delete(k);
    for (const [k, u] of until) if (u <= t) until.delete(k);
  };
  return {
    async add(adds) {
      const t = now();
      prune(t);
      return adds.map((a) => {
        let w = windows.get(a.key);
        if (!w || w.until <= t) {
          const kept = w !== undefined || windows.size < MAX_MEMORY_KEYS;
          w = { count: 0, entities: new Set(), until: 0 };
          if (kept) windows.set(a.key, w);
        }
        w.count += a.count;
        w.until = t + a.ttlMs;
        for (const e of a.entities) if (w.entities.size < MAX_WINDOW_ENTITIES) w.entities.add(e);
        return { count: w.count, entities: w.entities.size };
      });
    },
    async claim(key, ttlMs) {
      const t = now();
      prune(t);
      if ((until.get(key) ?? 0) > t || until.size >= MAX_MEMORY_KEYS) return false;
      until.set(key, t + ttlMs);
      return true;
    },
    async hold(key, ttlMs) {
      if (until.has(key) || until.size < MAX_MEMORY_KEYS) until.set(key, now() + ttlMs);
    },
    async held(keys) {
      const t = now();
      return keys.map((k) => (until.get(k) ?? 0) > t);
    },
    shutdown() {
      windows.clear();
      until.clear();
    },
  };
}
