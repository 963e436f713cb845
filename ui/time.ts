/** Time windows and times as the console shows them. DOM-free (unit-tested under Node). */

/** The windows offered by the time-range picker, as QueryService's `since` takes them. */
export const WINDOWS = ['15m', '1h', '6h', '24h', '7d'] as const;
/** A window offered by the picker. */
export type Window = (typeof WINDOWS)[number];

/** Whether `text` is a window the picker offers. */
export function isWindow(text: string | null | undefined): text is Window {
  return (WINDOWS as readonly string[]).includes(text ?? '');
}

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The request fields of a window ending at `now`: `{startTime, endTime}` as RFC 3339 (proto3 JSON Timestamps). */
export function windowRange(window: Window, now: number): { startTime: string; endTime: string } {
  const ms = Number(window.slice(0, -1)) * (UNIT_MS[window.slice(-1)] ?? 0);
  return { startTime: new Date(now - ms).toISOString(), endTime: new Date(now).toISOString() };
}

/** A timestamp as local `YYYY-MM-DD HH:MM:SS.mmm`; empty for none. */
export function formatTime(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Seconds as `3d 4h`, `2h 5m`, `4m 10s` or `12s`. */
export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const parts: Array<[number, string]> = [[Math.floor(s / 86_400), 'd'], [Math.floor((s % 86_400) / 3_600), 'h'], [Math.floor((s % 3_600) / 60), 'm'], [s % 60, 's']];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return '0s';
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(' ');
}

/** Bytes as `512 B`, `1.5 KiB`, `20.0 MiB`, ... */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}
