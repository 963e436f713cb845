/** RED series (GetRedSeries) as the services views show them. DOM-free (unit-tested under Node). */
import type { GetRedSeriesResponse, RedSeries } from './api/services-types.js';

/** One series summed over the whole window. */
export interface RedTotals {
  /** Entry spans (kind server or consumer) in the window. */
  requests: number;
  errors: number;
  /** Requests per second over the window. */
  rate: number;
  /** errors / requests; 0 without requests. */
  errorRate: number;
  /**
   * The highest p95 of any bucket with requests, in ms (0 without any). Percentiles of buckets do not
   * add up to the window's percentile: this is its upper bound over the buckets, labelled as a peak.
   */
  p95PeakMs: number;
}

const sum = (values: Array<string | number> | undefined): number => (values ?? []).reduce<number>((n, v) => n + Number(v), 0);

/** Seconds between the answer's start and end times (at least 1). */
export function windowSeconds(res: Pick<GetRedSeriesResponse, 'startTime' | 'endTime'>): number {
  const s = (Date.parse(res.endTime ?? '') - Date.parse(res.startTime ?? '')) / 1000;
  return Number.isFinite(s) && s > 1 ? s : 1;
}

/** The totals of `series` over a window of `seconds`. */
export function redTotals(series: RedSeries | undefined, seconds: number): RedTotals {
  const requests = sum(series?.requests);
  const errors = sum(series?.errors);
  const requestsAt = series?.requests ?? [];
  const p95PeakMs = (series?.p95Ms ?? []).reduce((m, v, i) => (Number(requestsAt[i] ?? 0) > 0 && v > m ? v : m), 0);
  return { requests, errors, rate: requests / seconds, errorRate: requests > 0 ? errors / requests : 0, p95PeakMs };
}

/** Which values of a series a chart line shows. */
export type RedField = 'rate' | 'errorRate' | 'p50Ms' | 'p95Ms' | 'p99Ms';

/**
 * uPlot's aligned data for `fields` of `series`: the bucket starts (Unix seconds, from bucketTimes)
 * then one row per field; error rates as percentages. Empty rows when there is no series.
 */
export function chartData(res: Pick<GetRedSeriesResponse, 'bucketTimes'>, series: RedSeries | undefined, fields: RedField[]): number[][] {
  const times = (res.bucketTimes ?? []).map((t) => Date.parse(t) / 1000);
  return [times, ...fields.map((f) => times.map((_, i) => (series?.[f]?.[i] ?? 0) * (f === 'errorRate' ? 100 : 1)))];
}

/** The series of one service (span name empty) or of one of its operations. */
export function seriesOf(res: GetRedSeriesResponse | undefined, service: string, spanName = ''): RedSeries | undefined {
  return res?.series?.find((s) => (s.serviceName ?? '') === service && (s.spanName ?? '') === spanName);
}

/** A rate as `12.3/s`, `0.05/s`, `0/s`. */
export function formatRate(perSecond: number): string {
  if (perSecond === 0) return '0/s';
  return `${perSecond >= 10 ? perSecond.toFixed(1) : perSecond >= 0.1 ? perSecond.toFixed(2) : perSecond.toPrecision(2)}/s`;
}

/** A share as `12.5%` (`0%` for none). */
export function formatPercent(share: number): string {
  return share === 0 ? '0%' : `${(share * 100).toFixed(share < 0.001 ? 2 : 1)}%`;
}

/** Milliseconds as `850 µs`, `12.4 ms`, `1.25 s`. */
export function formatMs(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
