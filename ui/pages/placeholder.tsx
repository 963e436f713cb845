import type { JSX } from 'preact';
import { PageHeader } from '../components/status.js';

/** A page not built yet (services, traces, security): its place in the navigation and its URL exist. */
export function Placeholder(props: { title: string; detail?: string }): JSX.Element {
  return (
    <section>
      <PageHeader title={props.title} />
      <div class="card muted" data-testid="placeholder">
        <p>This view is coming in the next part of the console.</p>
        {props.detail && <p>{props.detail}</p>}
      </div>
    </section>
  );
}
