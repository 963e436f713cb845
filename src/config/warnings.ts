import { mostDecodedBytes } from '../ingest/otlp/decoded-size.js';
import type { Config } from './schema.js';
import { formatBytes } from './units.js';

/**
 * Settings that are valid but work against each other, as sentences naming the keys: logged at
 * start and printed by check-config. Today: a listener that takes requests whose decoded form
 * cannot fit the memory limit (every such request is refused for good with 413).
 */
export function configWarnings(c: Config): string[] {
  const warnings: string[] = [];
  const limits = [
    ['server.otlp_http.max_body_size', c.server.otlp_http.max_body_size],
    ['server.grpc.max_recv_msg_size', c.server.grpc.max_recv_msg_size],
  ] as const;
  for (const [key, bytes] of limits) {
    if (mostDecodedBytes(bytes) <= c.ingest.memory.limit) continue;
    const fits = Math.floor(c.ingest.memory.limit / mostDecodedBytes(1));
    warnings.push(
      `${key} (${formatBytes(bytes)}) takes requests that need up to ${formatBytes(mostDecodedBytes(bytes))} while decoded, more than ingest.memory.limit (${formatBytes(c.ingest.memory.limit)}): requests over ${formatBytes(fits)} may be refused for good (413 / INVALID_ARGUMENT); lower it to ${formatBytes(fits)} or raise the memory limit`,
    );
  }
  return warnings;
}
