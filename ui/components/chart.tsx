import type { JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** One line of a chart. */
export interface ChartSeries {
  label: string;
  /** A CSS colour. */
  stroke: string;
}

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
      // Whole seconds on the time axis (uPlot's default labels milliseconds on short ranges).
      axes: [{ space: 90, incrs: [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600], values: (_u, splits) => splits.map((s) => new Date(s * 1000).toLocaleTimeString()) }, { size: 60 }],
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
