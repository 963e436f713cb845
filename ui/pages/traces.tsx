import type { JSX } from 'preact';
import { Placeholder } from './placeholder.js';

/** Traces (`/ui/traces`) and one trace (`/ui/traces/<id>`): not built yet; the navigation and URLs are in place. */
export function TracesPage(props: { traceId?: string }): JSX.Element {
  if (props.traceId) return <Placeholder title={`Trace ${props.traceId}`} detail="The trace view (waterfall, span details, logs on one timeline)." />;
  return <Placeholder title="Traces" detail="Trace search (service, operation, attributes, duration, status) and the trace view (waterfall, span details, logs on one timeline)." />;
}
