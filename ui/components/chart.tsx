import type { JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** One line of a chart. */
export interface ChartSeries {
  label: string;
  /** A CSS colour. */
  stroke: string;
}

/** A tick's label: the time of day, with the date when the ticks span more than a day. */
function timeLabel(seconds: number, splits: number[]): string {
  const d = new Date(seconds * 1000);
  const days = ((splits[splits.length - 1] ?? 0) - (splits[0] ?? 0)) / 86_400;
  return days > 1 ? `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` : d.toLocaleTimeString();
}

/** A value's label with three significant digits (uPlot's default rounds to 3 decimals: 0.0015 and 0.002 would read the same). */
const numberLabel = (v: number): string => String(Number(v.toPrecision(3)));

/**
 * A time-series chart (uPlot): `data[0]` holds Unix seconds, `data[i]` the values of `series[i-1]`.
 * Fits its container's width; updates in place when `data` changes.
 */
export function TimeChart(props: { title: string; series: ChartSeries[]; data: Array<Array<number | null>>; height?: number; testId?: string }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts: uPlot.Options = {
      title: props.title,
      width: el.clientWidth || 600,
      height: props.height ?? 220,
      series: [{}, ...props.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, points: { show: false } }))],
      // Whole seconds on the time axis (uPlot's default labels milliseconds on short ranges); up to
      // days for windows of a day or a week, labelled with their date.
      axes: [{ space: 90, incrs: [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 345_600, 604_800], values: (_u, splits) => splits.map((s) => timeLabel(s, splits)) }, { size: 60, values: (_u, splits) => splits.map(numberLabel) }],
      legend: { live: false },
    };
    const u = new uPlot(opts, props.data as uPlot.AlignedData, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: props.height ?? 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
    };
  }, [props.series.map((s) => s.label).join('|')]);
  useEffect(() => {
    plot.current?.setData(props.data as uPlot.AlignedData);
  }, [props.data]);
  return <div class="chart" ref={box} data-testid={props.testId} />;
}
