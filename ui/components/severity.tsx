import type { JSX } from 'preact';

/** OTLP log severity numbers by name (the lowest number of each range), for filters. */
export const LOG_SEVERITIES: Array<[string, number]> = [
  ['trace', 1],
  ['debug', 5],
  ['info', 9],
  ['warn', 13],
  ['error', 17],
  ['fatal', 21],
];

/** The level of an OTLP severity number (1-24), or of an event severity name (`SEVERITY_WARNING`). */
export function severityLevel(severity: number | string | undefined): string {
  if (typeof severity === 'string') return severity.replace(/^SEVERITY_/, '').toLowerCase() || 'unspecified';
  const n = severity ?? 0;
  for (let i = LOG_SEVERITIES.length - 1; i >= 0; i -= 1) {
    const [name, min] = LOG_SEVERITIES[i] ?? ['', 0];
    if (n >= min) return name;
  }
  return 'unspecified';
}

/** A coloured badge for a severity (log number or event name); `text` overrides the label. */
export function SeverityBadge(props: { severity: number | string | undefined; text?: string }): JSX.Element {
  const level = severityLevel(props.severity);
  return <span class={`badge sev-${level}`}>{props.text || level}</span>;
}

/** A coloured badge for a state word (`ready`, `degraded`, `failed`, `running`, `succeeded`, ...). */
export function StateBadge(props: { state: string }): JSX.Element {
  return <span class={`badge state-${props.state.toLowerCase()}`}>{props.state.toLowerCase()}</span>;
}
