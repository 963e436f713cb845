import type { JSX } from 'preact';
import { WINDOWS, type Window } from '../time.js';

/** Picks the query window (last 15 minutes ... last 7 days). */
export function TimeRange(props: { value: Window; onChange: (w: Window) => void; name?: string }): JSX.Element {
  return (
    <label class="field">
      <span>Window</span>
      <select name={props.name ?? 'window'} value={props.value} onChange={(e) => props.onChange((e.currentTarget).value as Window)}>
        {WINDOWS.map((w) => (
          <option value={w}>last {w}</option>
        ))}
      </select>
    </label>
  );
}
