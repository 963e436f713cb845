import type { JSX } from 'preact';
import { TraceSearchPage } from './trace-search.js';
import { TraceView } from './trace-view.js';

/** Traces (`/ui/traces?...`: the search) and one trace (`/ui/traces/<id>?span=...`: the waterfall). */
export function TracesPage(props: { traceId?: string }): JSX.Element {
  return props.traceId ? <TraceView traceId={props.traceId} /> : <TraceSearchPage />;
}
