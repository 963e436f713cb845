import type { JSX } from 'preact';
import { Placeholder } from './placeholder.js';

/** Security: not built yet; the navigation and URL are in place. */
export function SecurityPage(): JSX.Element {
  return <Placeholder title="Security" detail="Mode, blocks, incidents, top offenders, and pending actions a second admin approves or rejects." />;
}
