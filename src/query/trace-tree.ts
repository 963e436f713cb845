/** What the tree needs of a span: its ids and its start (ns since the epoch). */
export interface TreeSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  start: bigint;
}

/** What the tree needs of a log record or event: the span it names (empty: none) and its time. */
export interface TreeNote {
  traceId: string;
  spanId: string;
  time: bigint;
}

/** One entry of the tree order: a span with its depth (and whether its parent is missing), or a note. */
export type Placed<S, N> = { span: S; depth: number; orphan: boolean } | { note: N };

/** A node's entries: its notes and child spans, sorted by time when walked. */
interface Entry<S, N> {
  time: bigint;
  span?: Node<S, N>;
  note?: N;
}

interface Node<S, N> {
  span: S;
  parent: Node<S, N> | undefined;
  orphan: boolean;
  entries: Array<Entry<S, N>>;
}

const keyOf = (traceId: string, spanId: string): string => `${traceId.toLowerCase()}/${spanId.toLowerCase()}`;

/** Notes before spans at the same time (a note belongs to the span above), spans by id; otherwise input order. */
function byTime<S extends TreeSpan, N>(a: Entry<S, N>, b: Entry<S, N>): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (!a.span || !b.span) return (a.span ? 1 : 0) - (b.span ? 1 : 0);
  return a.span.span.spanId < b.span.span.spanId ? -1 : a.span.span.spanId > b.span.span.spanId ? 1 : 0;
}

/** The earlier of two spans by start, then span id. */
const earlier = <S extends TreeSpan, N>(a: Node<S, N>, b: Node<S, N>): Node<S, N> => (b.span.start < a.span.start || (b.span.start === a.span.start && b.span.spanId < a.span.spanId) ? b : a);

/** Cuts every parent cycle (bad data) at its earliest span (by start, then span id), which becomes an orphan heading the rest. */
function cutCycles<S extends TreeSpan, N>(nodes: ReadonlyArray<Node<S, N>>): void {
  const done = new Set<Node<S, N>>();
  for (const start of nodes) {
    const path: Array<Node<S, N>> = [];
    const onPath = new Set<Node<S, N>>();
    for (let n: Node<S, N> | undefined = start; n && !done.has(n); n = n.parent) {
      if (onPath.has(n)) {
        const cycle = path.slice(path.indexOf(n));
        const cut = cycle.reduce(earlier);
        cut.parent = undefined;
        cut.orphan = true;
        break;
      }
      path.push(n);
      onPath.add(n);
    }
    for (const p of path) done.add(p);
  }
}

/**
 * Spans, log records and events of one or more traces in tree order: each span followed by its
 * subtree, in which the span's own notes (by span id) and its children (each with its subtree) come
 * in time order, siblings by start time. Roots, orphans (a parent id not among the spans, or a
 * parent cycle) and notes naming no span head the top level, in time order. Every input appears once.
 */
export function treeOrder<S extends TreeSpan, N extends TreeNote>(spans: readonly S[], notes: readonly N[]): Array<Placed<S, N>> {
  const nodes: Array<Node<S, N>> = spans.map((span) => ({ span, parent: undefined, orphan: false, entries: [] }));
  const byKey = new Map<string, Node<S, N>>();
  for (const n of nodes) if (!byKey.has(keyOf(n.span.traceId, n.span.spanId))) byKey.set(keyOf(n.span.traceId, n.span.spanId), n);
  for (const n of nodes) {
    if (n.span.parentSpanId === '') continue;
    n.parent = byKey.get(keyOf(n.span.traceId, n.span.parentSpanId));
    n.orphan = n.parent === undefined;
  }
  cutCycles(nodes);
  const top: Array<Entry<S, N>> = [];
  for (const n of nodes) (n.parent?.entries ?? top).push({ time: n.span.start, span: n });
  for (const note of notes) {
    const owner = note.spanId === '' ? undefined : byKey.get(keyOf(note.traceId, note.spanId));
    (owner?.entries ?? top).push({ time: note.time, note });
  }
  // Walked with a stack of its own: a deep chain of spans must not overflow the call stack.
  const out: Array<Placed<S, N>> = [];
  const stack: Array<{ entry: Entry<S, N>; depth: number }> = top.sort(byTime).reverse().map((entry) => ({ entry, depth: 0 }));
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { entry, depth } = next;
    if (entry.note) out.push({ note: entry.note });
    if (!entry.span) continue;
    out.push({ span: entry.span.span, depth, orphan: entry.span.orphan });
    for (const child of entry.span.entries.sort(byTime).reverse()) stack.push({ entry: child, depth: depth + 1 });
  }
  return out;
}
