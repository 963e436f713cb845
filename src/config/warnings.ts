import { mostDecodedBytes } from '../ingest/otlp/decoded-size.js';
import { RED_FAMILY } from '../ingest/red-metrics.js';
import { LIMIT_STATS_FAMILY, SECURITY_REFUSALS_FAMILY } from '../ratelimit/stats.js';
import { worstSeriesBytes } from '../telemetry/series-limits.js';
import type { Config } from './schema.js';
import { formatBytes } from './units.js';

/**
 * Settings that are valid but work against each other, as sentences naming the keys: logged at
 * start and printed by check-config. Today: a listener that takes requests whose decoded form
 * cannot fit the memory limit (every such request is refused for good with 413), and a metric
 * family whose cap of label sets cannot fit its size budget at the longest label values.
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
  warnings.push(...familyWarnings(c));
  return warnings;
}

/** Client-labelled metric families whose max_series label sets, every value at max_label_length, pass telemetry.metrics.max_family_size. */
function familyWarnings(c: Config): string[] {
  const m = c.telemetry.metrics;
  const families = [
    { key: 'ingest.red_metrics.max_series', maxSeries: c.ingest.red_metrics.enabled ? c.ingest.red_metrics.max_series : 0, family: RED_FAMILY },
    { key: 'telemetry.metrics.max_series', maxSeries: m.max_series, family: LIMIT_STATS_FAMILY },
    { key: 'telemetry.metrics.max_series', maxSeries: m.max_series, family: SECURITY_REFUSALS_FAMILY },
  ];
  const warnings: string[] = [];
  for (const { key, maxSeries, family } of families) {
    const each = worstSeriesBytes(family.shape, family.labels, m.max_label_length);
    if (maxSeries * each <= m.max_family_size) continue;
    warnings.push(
      `${key} (${maxSeries}) label sets of ${family.name} take up to ${formatBytes(maxSeries * each)} of /metrics at telemetry.metrics.max_label_length (${m.max_label_length}), more than telemetry.metrics.max_family_size (${formatBytes(m.max_family_size)}): past about ${Math.floor(m.max_family_size / each)} long-valued label sets, new ones count as __overflow__ before the series cap; raise max_family_size to ${formatBytes(maxSeries * each)} or lower the cap`,
    );
  }
  return warnings;
}
