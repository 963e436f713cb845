import { useEffect, useState } from 'preact/hooks';

/** The state of a call a view depends on. */
export interface CallState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
}

/**
 * Runs `fn` whenever `deps` change (and every `refreshMs` when given), aborting the previous call; a
 * view shows `data`, or `error`. The latest answer wins; `data` is cleared when `deps` change, kept across refreshes.
 */
export function useCall<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[], refreshMs?: number): CallState<T> & { reload: () => void } {
  const [state, setState] = useState<CallState<T>>({ data: undefined, error: undefined, loading: true });
  const [tick, setTick] = useState(0);
  // New deps (another search): the previous answer is not shown meanwhile; a refresh keeps it.
  useEffect(() => setState({ data: undefined, error: undefined, loading: true }), deps);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    fn(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ data, error: undefined, loading: false }),
      (error: unknown) => !ctl.signal.aborted && setState({ data: undefined, error, loading: false }),
    );
    const timer = refreshMs ? setTimeout(() => setTick((t) => t + 1), refreshMs) : undefined;
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}
