import type { JSX } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, createApi } from './api/client.js';
import { ErrorBox } from './components/status.js';
import { ConsoleContext, type Console } from './context.js';
import { EventsPage } from './pages/events.js';
import { JobsPage } from './pages/jobs.js';
import { LogsPage } from './pages/logs.js';
import { OverviewPage } from './pages/overview.js';
import { SecurityPage } from './pages/security.js';
import { ServicePage } from './pages/service.js';
import { ServicesPage } from './pages/services.js';
import { SignIn } from './pages/sign-in.js';
import { TracesPage } from './pages/traces.js';
import { BASE, href, Link, useLocation } from './router.js';
import { fetchAccess, storedToken, storeToken, type Access } from './session.js';

/** A navigation entry: its path under /ui/, its label, and whether the token may use it. */
interface NavItem {
  path: string;
  label: string;
  allowed: (a: Access) => boolean;
}

/** The navigation, in order; an entry the token may not use is not shown. */
const NAV: NavItem[] = [
  { path: '/', label: 'Overview', allowed: () => true },
  { path: '/services', label: 'Services', allowed: (a) => a.query },
  { path: '/traces', label: 'Traces', allowed: (a) => a.query },
  { path: '/logs', label: 'Logs', allowed: (a) => a.query },
  { path: '/events', label: 'Events', allowed: (a) => a.query },
  { path: '/jobs', label: 'Jobs', allowed: (a) => a.admin },
  { path: '/security', label: 'Security', allowed: (a) => a.admin },
];

/** The page for a path under /ui/ (`/traces/<id>` and `/services/<name>` included); unknown paths get the overview's 404 text. */
function Page(props: { path: string }): JSX.Element {
  const rest = props.path.slice(BASE.length).replace(/\/+$/, '') || '/';
  const trace = /^\/traces\/([^/]+)$/.exec(rest);
  if (trace?.[1]) return <TracesPage traceId={decodeURIComponent(trace[1])} />;
  const service = /^\/services\/([^/]+)$/.exec(rest);
  if (service?.[1]) return <ServicePage service={decodeURIComponent(service[1])} />;
  switch (rest) {
    case '/':
      return <OverviewPage />;
    case '/services':
      return <ServicesPage />;
    case '/traces':
      return <TracesPage />;
    case '/logs':
      return <LogsPage />;
    case '/events':
      return <EventsPage />;
    case '/jobs':
      return <JobsPage />;
    case '/security':
      return <SecurityPage />;
    default:
      return <div class="card">No page at {props.path}.</div>;
  }
}

/** The layout around every page: brand, navigation, who is signed in, sign out. */
function Layout(props: { access: Access; onSignOut: () => void }): JSX.Element {
  const { path } = useLocation();
  const current = path.slice(BASE.length).replace(/\/+$/, '') || '/';
  const a = props.access;
  const scopes = a.authEnabled ? `${a.name}: ${[a.admin && 'admin', a.query && 'query'].filter(Boolean).join(', ') || 'no console scopes'}${a.tenant ? ` (tenant ${a.tenant})` : ''}` : 'auth off';
  return (
    <div class="layout">
      <header class="topbar">
        <Link href={href('/')} class="brand">
          Heimdall
        </Link>
        <nav>
          {NAV.filter((n) => n.allowed(props.access)).map((n) => (
            <Link href={href(n.path === '/' ? '/' : n.path)} class={(n.path === '/' ? current === '/' : current.startsWith(n.path)) ? 'active' : ''}>
              {n.label}
            </Link>
          ))}
        </nav>
        <div class="who">
          <span class="muted" data-testid="scopes">
            {scopes}
          </span>
          {props.access.authEnabled && <button onClick={props.onSignOut}>Sign out</button>}
        </div>
      </header>
      <main>
        <Page path={path} />
      </main>
    </div>
  );
}

/** The console: finds what the stored token (or no token) may do; asks for a token when the agent needs one. */
export function App(): JSX.Element {
  const [token, setToken] = useState(storedToken);
  const api = useMemo(() => createApi(() => token), [token]);
  const [access, setAccess] = useState<Access>();
  const [error, setError] = useState<unknown>();
  const [checking, setChecking] = useState(true);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    setChecking(true);
    fetchAccess(api)
      .then(setAccess, (err: unknown) => {
        setAccess(undefined);
        // No token yet: asking for one is no error. A token the agent does not know is forgotten.
        if (err instanceof ApiError && err.code === 'unauthenticated') {
          if (token !== undefined) storeToken(undefined);
          setError(token !== undefined ? err : undefined);
        } else setError(err);
      })
      .finally(() => setChecking(false));
  }, [api, attempt]);
  const signIn = async (t: string) => {
    storeToken(t);
    setToken(t);
    setAttempt((n) => n + 1);
  };
  const signOut = () => {
    storeToken(undefined);
    setAccess(undefined);
    setError(undefined);
    setToken(undefined);
  };
  if (checking) return <div class="loading">Connecting…</div>;
  if (!access) {
    if (error !== undefined && !(error instanceof ApiError && error.code === 'unauthenticated')) return <ErrorBox error={error} />;
    return <SignIn onSubmit={signIn} error={error} />;
  }
  const value: Console = { api, access };
  return (
    <ConsoleContext.Provider value={value}>
      <Layout access={access} onSignOut={signOut} />
    </ConsoleContext.Provider>
  );
}
