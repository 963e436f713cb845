import type { ComponentChildren, JSX } from 'preact';
import { ApiError } from '../api/client.js';

/** Shows a failed call: the API's code and message (a missing scope says which). */
export function ErrorBox(props: { error: unknown }): JSX.Element {
  const e = props.error;
  const text = e instanceof ApiError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
  return (
    <div class="error" role="alert">
      {text}
    </div>
  );
}

/** A page's title bar, with controls on the right. */
export function PageHeader(props: { title: string; children?: ComponentChildren }): JSX.Element {
  return (
    <div class="page-header">
      <h1>{props.title}</h1>
      <div class="page-actions">{props.children}</div>
    </div>
  );
}
