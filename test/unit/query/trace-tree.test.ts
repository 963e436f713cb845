import { describe, expect, it } from 'vitest';
import { treeOrder, type TreeNote, type TreeSpan } from '../../../src/query/trace-tree.js';
import { prng } from '../../support/prng.js';

const T = 'a'.repeat(32);
const span = (spanId: string, parentSpanId: string, startMs: number, traceId = T): TreeSpan => ({ traceId, spanId, parentSpanId, start: BigInt(startMs) * 1_000_000n });
const note = (name: string, spanId: string, ms: number, traceId = T): TreeNote & { name: string } => ({ name, traceId, spanId, time: BigInt(ms) * 1_000_000n });

/** The placed entries as short text: `span@depth` (with `!` for an orphan) or `note:name`. */
const show = (placed: ReturnType<typeof treeOrder<TreeSpan, TreeNote & { name: string }>>): string[] =>
  placed.map((p) => ('note' in p ? `note:${p.note.name}` : `${p.span.spanId}@${p.depth}${p.orphan ? '!' : ''}`));

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = prng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('treeOrder', () => {
  // root r (0 ms) with children b (30 ms) and a (10 ms); a's child a1 starts before its parent
  // (clock skew); an orphan o names a parent that is not stored; a second root s starts at 20 ms.
  const spans = [span('r', '', 0), span('b', 'r', 30), span('a', 'r', 10), span('a1', 'a', 5), span('o', 'missing', 15), span('s', '', 20), span('b1', 'b', 31)];
  const notes = [note('log-a', 'a', 12), note('log-r-late', 'r', 40), note('event-free', '', 17), note('log-unknown-span', 'nope', 1), note('log-b1', 'b1', 31)];
  const expected = ['r@0', 'a@1', 'a1@2', 'note:log-a', 'b@1', 'b1@2', 'note:log-b1', 'note:log-r-late', 'note:log-unknown-span', 'o@0!', 'note:event-free', 's@0'];

  it('puts children under their parent, siblings by start time, notes under their span in time order, orphans marked, whatever the input order', () => {
    for (let seed = 1; seed <= 50; seed++) {
      expect(show(treeOrder(shuffled(spans, seed), shuffled(notes, seed + 1000)))).toEqual(expected);
    }
  });

  it('keeps a child under its parent when it starts before the parent, and orders siblings with the same start by span id', () => {
    const same = [span('p', '', 10), span('z', 'p', 5), span('y', 'p', 5), span('x', 'p', 7)];
    for (let seed = 1; seed <= 20; seed++) expect(show(treeOrder(shuffled(same, seed), []))).toEqual(['p@0', 'y@1', 'z@1', 'x@1']);
  });

  it('breaks parent cycles into orphans and places every span once', () => {
    const cyclic = [span('c1', 'c2', 0), span('c2', 'c1', 1), span('self', 'self', 2), span('kid', 'c2', 3)];
    for (let seed = 1; seed <= 20; seed++) expect(show(treeOrder(shuffled(cyclic, seed), []))).toEqual(['c1@0!', 'c2@1', 'kid@2', 'self@0!']);
  });

  it('keeps traces apart: the same span id in two traces has its own children', () => {
    const U = 'b'.repeat(32);
    const two = [span('r', '', 0, U), span('c', 'r', 1, U), span('r', '', 5), span('c', 'r', 6)];
    const placed = treeOrder(two, []);
    expect(placed.map((p) => ('span' in p ? `${p.span.traceId[0]}:${p.span.spanId}@${p.depth}` : ''))).toEqual(['b:r@0', 'b:c@1', 'a:r@0', 'a:c@1']);
  });

  it('walks a chain of 20,000 spans without overflowing the stack', () => {
    const chain = Array.from({ length: 20_000 }, (_, i) => span(`s${i}`, i === 0 ? '' : `s${i - 1}`, i));
    const placed = treeOrder(shuffled(chain, 7), []);
    expect(placed.map((p) => ('span' in p ? p.depth : -1))).toEqual(chain.map((_, i) => i));
  });
});
