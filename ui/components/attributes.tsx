import type { JSX } from 'preact';

/** A key/value table of attributes, by key; rows carry `data-key`. Nothing when there are none. */
export function Attributes(props: { attrs: Record<string, string> | undefined; testId?: string }): JSX.Element | null {
  const entries = Object.entries(props.attrs ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <p class="muted small">No attributes.</p>;
  return (
    <table class="table attrs" data-testid={props.testId}>
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k} data-key={k}>
            <th class="mono">{k}</th>
            <td class="mono">{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
