import { readFileSync } from 'node:fs';

/**
 * The process' limit of open files (the soft RLIMIT_NOFILE, which Node.js raises to the hard one at
 * start), read from /proc/self/limits; undefined where that file is missing (not Linux) or says
 * unlimited. `read` is for tests.
 */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  return m?.[1] && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
}

/** Fewest connections a listener is lowered to, however few descriptors are left. */
const MIN_CONNECTIONS = 16;

/**
 * The listeners' connection caps, lowered in proportion when together they would leave fewer than
 * `reserve` of `limit` file descriptors to the agent's own files (queue segments, the embedded
 * engine's parts, exports, Redis and ClickHouse sockets). Unchanged when there is no limit.
 */
export function fitConnectionCaps<K extends string>(caps: Record<K, number>, limit: number | undefined, reserve: number): { caps: Record<K, number>; lowered: boolean } {
  const total = Object.values<number>(caps).reduce((a, b) => a + b, 0);
  const budget = limit === undefined ? Number.POSITIVE_INFINITY : limit - reserve;
  if (total <= budget) return { caps, lowered: false };
  const scale = Math.max(0, budget) / total;
  const fitted = Object.fromEntries(Object.entries<number>(caps).map(([name, cap]) => [name, Math.max(MIN_CONNECTIONS, Math.floor(cap * scale))])) as Record<K, number>;
  return { caps: fitted, lowered: true };
}
