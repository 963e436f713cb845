import type { JSX } from 'preact';

/** A small line of `values` (inline SVG, no axes) scaled to its own maximum; a flat line when all are 0. */
export function Sparkline(props: { values: number[]; width?: number; height?: number; title?: string }): JSX.Element {
  const w = props.width ?? 120;
  const h = props.height ?? 24;
  const max = Math.max(0, ...props.values);
  const n = props.values.length;
  const points = props.values.map((v, i) => `${n > 1 ? ((i / (n - 1)) * w).toFixed(1) : 0},${(h - 1 - (max > 0 ? (v / max) * (h - 2) : 0)).toFixed(1)}`).join(' ');
  return (
    <svg class="sparkline" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={props.title ?? 'trend'}>
      {props.title && <title>{props.title}</title>}
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}
