import type { Counter } from 'prom-client';

/**
 * Counts for a few counters of the same labels, kept as plain numbers per label set and handed to
 * the counters when they are collected (a scrape, or any read through prom-client), so counting a
 * hit on the hot path hashes no labels and makes no objects. What the counters show after a
 * collection is what incrementing them at once would have shown, in the same order of label sets.
 */

/** One label set's counts not yet handed to the counters. */
export interface HitSlot {
  readonly labels: Record<string, string>;
  readonly counts: number[];
  /** Bit c: counter c has counted this label set (it is in that counter's order). */
  seen: number;
  /** Bit c: counter c holds this label set (a series, even at 0). */
  handed: number;
}

/** The counts of `counters`, by slot. */
export interface HitCounts {
  /** A slot for one label set (make it once per label set: it is the label set's identity). */
  readonly slot: (labels: Record<string, string>) => HitSlot;
  /** Adds `n` to counter `c` of a slot (0 makes the label set appear, as inc(0) does). */
  add(slot: HitSlot, c: number, n: number): void;
  /** Hands every count to its counter; each counter's `collect` calls it (a plain function: no `this`). */
  readonly flush: () => void;
}

/** Creates the counts for `counters()` (read at flush, so the counters can take `flush` as their collect). */
export function createHitCounts(counters: () => ReadonlyArray<Counter<string>>): HitCounts {
  // Per counter, the label sets in the order it first counted them (the order its series appear in).
  const order: HitSlot[][] = [];
  return {
    slot: (labels) => ({ labels, counts: new Array<number>(counters().length).fill(0), seen: 0, handed: 0 }),
    add(slot, c, n) {
      if ((slot.seen & (1 << c)) === 0) {
        slot.seen |= 1 << c;
        (order[c] ??= []).push(slot);
      }
      slot.counts[c] = (slot.counts[c] as number) + n;
    },
    flush: () => {
      counters().forEach((counter, c) => {
        for (const slot of order[c] ?? []) {
          const n = slot.counts[c] as number;
          if (n === 0 && (slot.handed & (1 << c)) !== 0) continue;
          counter.inc(slot.labels, n);
          slot.handed |= 1 << c;
          slot.counts[c] = 0;
        }
      });
    },
  };
}
