import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ErrorBox } from '../components/status.js';

/**
 * Asks for an API token. The token goes to `onSubmit` only: it is never put in a URL (the form does
 * not submit anywhere) and never logged.
 */
export function SignIn(props: { onSubmit: (token: string) => Promise<void>; error?: unknown }): JSX.Element {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = (e: Event) => {
    e.preventDefault();
    setBusy(true);
    void props.onSubmit(token.trim()).finally(() => setBusy(false));
  };
  return (
    <div class="sign-in">
      <form class="card" onSubmit={submit}>
        <h1>Heimdall</h1>
        <p>This agent checks API tokens. Sign in with a token from its <code>auth</code> configuration; it is kept in this tab only (session storage) and sent as the Authorization header.</p>
        <label class="field">
          <span>API token</span>
          <input name="token" type="password" autocomplete="off" required value={token} onInput={(e) => setToken((e.currentTarget).value)} />
        </label>
        {props.error !== undefined && <ErrorBox error={props.error} />}
        <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
          Sign in
        </button>
      </form>
    </div>
  );
}
