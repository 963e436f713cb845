/**
 * The rate-limit limits as the check uses them: descriptor trees of resolved limits. Apart from the
 * limits files' parser (config.ts: YAML and zod), which runs on the main thread; the rate-limit
 * worker gets the trees it loads.
 */

/** Seconds per envoyproxy/ratelimit unit (a month is 30 days, a year 365). */
export const UNIT_SECONDS = { second: 1, minute: 60, hour: 3_600, day: 86_400, week: 604_800, month: 2_592_000, year: 31_536_000 } as const;
export type Unit = keyof typeof UNIT_SECONDS;

/** A configured limit, resolved: its bucket and how it reports. */
export interface Limit {
  name: string | undefined;
  unit: Unit;
  requestsPerUnit: number;
  capacity: number;
  unlimited: boolean;
  replaces: string[];
  backend: 'local' | 'redis';
  shadowMode: boolean;
  detailedMetric: boolean;
  /** Where the limit sits: `domain.key_value.key...`, for metrics and bucket keys. */
  path: string;
}

/** One level of the descriptor tree. */
export interface DescriptorNode {
  limit: Limit | undefined;
  /** Exact `key_value` matches and key-only defaults (`key`). */
  children: Map<string, DescriptorNode>;
  /** Wildcard values (`prefix*`) per key, longest prefix first. */
  wildcards: Map<string, Array<{ prefix: string; node: DescriptorNode }>>;
  /** The honeypot this descriptor is a trap of (`honeypot: <name>`); none: not a trap. */
  honeypot: string | undefined;
}

/** Every domain's descriptor tree. */
export type RateLimitConfig = Map<string, DescriptorNode>;
