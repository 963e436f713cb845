/** Reads Prometheus text exposition (GET /metrics) into sums by metric name. DOM-free (unit-tested under Node). */

/**
 * Sums every sample of each metric name over its labels (`heimdall_x_total{transport="grpc"} 3` and
 * `{transport="http"} 4` give `heimdall_x_total: 7`); comments, NaN and malformed lines are skipped.
 */
export function sumByName(text: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})?\s+(\S+)/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const value = Number(m[2]);
    if (Number.isNaN(value)) continue;
    sums.set(m[1], (sums.get(m[1]) ?? 0) + value);
  }
  return sums;
}

/** The sum of the metrics whose names match `pattern`. */
export function total(sums: Map<string, number>, pattern: RegExp): number {
  let t = 0;
  for (const [name, v] of sums) if (pattern.test(name)) t += v;
  return t;
}
