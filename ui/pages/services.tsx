import type { JSX } from 'preact';
import { Placeholder } from './placeholder.js';

/** Services: not built yet; the navigation and URL are in place. */
export function ServicesPage(): JSX.Element {
  return <Placeholder title="Services" detail="RED charts per service and operation (rate, errors, p50/p95/p99)." />;
}
