import { MAX_DATETIME64_NANOS } from '../storage/rowbinary.js';

/**
 * A unix-nanosecond timestamp as ClickHouse DateTime64(9) text: `ssssssssss.nnnnnnnnn`, seconds
 * zero-padded to ten digits. ClickHouse reads ten-digit seconds as a unix time (exact, whatever the
 * server's time zone) but tries shorter ones as dates, so 0 (an unset time) must be padded. Values
 * past 2262 are clamped to the largest DateTime64(9).
 */
export function nanosToDateTime64(nanos: bigint): string {
  const n = nanos > MAX_DATETIME64_NANOS ? MAX_DATETIME64_NANOS : nanos;
  return `${(n / 1_000_000_000n).toString().padStart(10, '0')}.${(n % 1_000_000_000n).toString().padStart(9, '0')}`;
}
