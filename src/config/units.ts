import { z } from './zod.js';
import { splitHostPort } from './host-port.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** Parses `250ms`, `5s`, `2m`, `1h`, `90d`, `2w` (or a bare `0`) into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (text.trim() === '0') return 0;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? ''] ?? Number.NaN));
}

/** Parses `512` (bytes), `64KiB`, `4MiB`, `1GB` into bytes; undefined when malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

/** Longest timer Node.js can set (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration setting: a string such as `5s` or a number of milliseconds; parsed to milliseconds.
 * `min` and `max` (ms) bound it; timers take `max: MAX_TIMER_MS`.
 */
export function duration(bounds: { min?: number; max?: number } = {}) {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = bounds;
  return z.union([z.number().nonnegative(), z.string()]).transform((value, ctx) => {
    const ms = typeof value === 'number' ? value : parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration such as "500ms", "5s", "1h" or "90d"' });
      return z.NEVER;
    }
    if (ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `expected a duration from ${formatMs(min)} to ${formatMs(max)}` });
      return z.NEVER;
    }
    return ms;
  });
}

/** Milliseconds in the largest unit that divides them exactly: `31d`, `6h`, `90s`, `250ms`. */
export function formatMs(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS[unit] ?? 1;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Milliseconds in the largest unit they reach, to a tenth: `7.0d`, `2.5h`, `90.0s`, `15ms` (for widths that are not round). */
export function formatMsRoughly(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS[unit] ?? 1;
    if (ms >= size) return `${(ms / size).toFixed(1)}${unit}`;
  }
  return `${ms}ms`;
}

/** Bytes in the largest binary unit that keeps one decimal: `20MiB`, `1.5GiB`, `512KiB`, `100B`. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size) return `${Math.floor((bytes / size) * 10) / 10}${unit}`;
  }
  return `${bytes}B`;
}

/** A whole number, also written as text (as environment substitution produces). */
export function integer(bounds: { min?: number; max?: number } = {}) {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = bounds;
  return z.union([z.number(), z.string().regex(/^\s*-?\d+\s*$/, 'expected a whole number').transform(Number)]).pipe(z.number().int().min(min).max(max));
}

/** A number, also written as text. */
export function decimal(bounds: { min?: number; max?: number } = {}) {
  const { min = -Number.MAX_VALUE, max = Number.MAX_VALUE } = bounds;
  return z.union([z.number(), z.string().regex(/^\s*-?\d+(\.\d+)?\s*$/, 'expected a number').transform(Number)]).pipe(z.number().min(min).max(max));
}

/** A boolean, also written as the text `true` or `false`. */
export const boolean = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

/** The least any size setting takes: under it no request, payload, file or buffer is of use. */
export const MIN_SIZE = 1024;

/**
 * A size setting of at least `min` bytes (and MIN_SIZE): a string such as `4MiB`, or a number of
 * bytes (also as text, as environment substitution gives it); parsed to bytes. A number without a
 * unit under the bound is refused saying that it counts as bytes.
 */
export function byteSizeAtLeast(min: number) {
  const least = Math.max(min, MIN_SIZE);
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    const bytes = typeof value === 'number' ? value : parseSize(value);
    if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes < 0) {
      ctx.addIssue({ code: 'custom', message: 'expected a size such as "4MiB" or "512KiB" (a number without a unit counts as bytes)' });
      return z.NEVER;
    }
    if (bytes < least) {
      const bare = typeof value === 'number' || /^\s*\d+\s*$/.test(value);
      ctx.addIssue({ code: 'custom', message: `expected at least ${formatBytes(least)}${bare ? ' (a number without a unit counts as bytes; write a unit, as in "64MiB")' : ''}` });
      return z.NEVER;
    }
    return bytes;
  });
}

/** A size setting of at least MIN_SIZE (see byteSizeAtLeast). */
export const byteSize = byteSizeAtLeast(MIN_SIZE);

/** A `host:port` listen address; port 0 picks a free port. IPv6 hosts are written in brackets. */
export const listenAddress = z.string().refine((v) => splitHostPort(v) !== undefined, 'expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535');
