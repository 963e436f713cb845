import type { JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { TraceSummary } from '../api/trace-types.js';
import { formatTime } from '../time.js';
import { timeUs } from '../trace-layout.js';

/** Points only (no lines): a scatter in uPlot. */
const POINTS = { paths: () => null, points: { show: true, size: 7, width: 1 } };

/** The traces as [start seconds, duration of those without errors, duration of those with errors], by start. */
function scatterData(traces: TraceSummary[]): { data: uPlot.AlignedData; ids: string[] } {
  const sorted = [...traces].sort((a, b) => timeUs(a.startTime) - timeUs(b.startTime));
  const x = sorted.map((t) => timeUs(t.startTime) / 1e6);
  const ok = sorted.map((t) => ((t.errorCount ?? 0) > 0 ? null : (t.durationMs ?? 0)));
  const bad = sorted.map((t) => ((t.errorCount ?? 0) > 0 ? (t.durationMs ?? 0) : null));
  return { data: [x, ok, bad], ids: sorted.map((t) => t.traceId) };
}

/** Local time of Unix `seconds` as `HH:MM:SS`, with milliseconds when the axis spans under a minute. */
function clock(seconds: number, rangeSeconds: number): string {
  return formatTime(new Date(seconds * 1000).toISOString()).slice(11, rangeSeconds < 60 ? 23 : 19);
}

/** Duration over time of the traces found (uPlot scatter; traces with errors in red); a click on a point opens its trace. */
export function TraceScatter(props: { traces: TraceSummary[]; onPick: (traceId: string) => void }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const pick = useRef(props.onPick);
  pick.current = props.onPick;
  useEffect(() => {
    const el = box.current;
    if (!el || props.traces.length === 0) return undefined;
    const { data, ids } = scatterData(props.traces);
    const opts: uPlot.Options = {
      width: el.clientWidth || 600,
      height: 160,
      series: [{}, { label: 'traces', stroke: '#3b7dd8', fill: '#3b7dd855', ...POINTS }, { label: 'with errors', stroke: '#c62828', fill: '#c6282855', ...POINTS }],
      axes: [{ space: 110, values: (u, splits) => splits.map((s) => clock(s, (u.scales.x?.max ?? 0) - (u.scales.x?.min ?? 0))) }, { size: 60, label: 'ms', values: (_u, splits) => splits.map((v) => String(v)) }],
      // Room around the first and last trace (a second at least), and durations from 0.
      scales: { x: { time: true, range: (_u, min, max) => [min - Math.max((max - min) * 0.04, 1), max + Math.max((max - min) * 0.04, 1)] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      legend: { live: false },
      cursor: { points: { size: 10 } },
    };
    const u = new uPlot(opts, data, el);
    const onClick = () => {
      const i = u.cursor.idx;
      if (i != null && ids[i]) pick.current(ids[i]);
    };
    u.over.addEventListener('click', onClick);
    const resize = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: 160 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.over.removeEventListener('click', onClick);
      u.destroy();
    };
  }, [props.traces]);
  return <div class="chart scatter" ref={box} data-testid="trace-scatter" />;
}
