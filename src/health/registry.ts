import { Gauge, type Registry } from 'prom-client';

/** Lifecycle state of a component. `ready` and `degraded` serve traffic; the others do not. */
export type ComponentState = 'starting' | 'ready' | 'degraded' | 'failed' | 'stopping';

/** One component's health as the registry knows it. */
export interface ComponentHealth {
  name: string;
  state: ComponentState;
  since: Date;
  /** Why it is in this state; empty when ready. */
  reason: string;
  /** Whether the agent is ready only while this component is. */
  critical: boolean;
}

/** A component's handle for reporting its own state. */
export interface HealthReporter {
  /** Records a new state; a repeated identical report changes nothing (`since` is kept). */
  set(state: ComponentState, reason?: string): void;
  readonly state: ComponentState;
}

/** Whether the agent as a whole is ready, with the reasons when it is not. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** The agent's component health registry, read by grpc.health.v1, /readyz and /status. */
export interface HealthRegistry {
  /** Adds a component in state `starting`. Registering a name twice throws. */
  register(name: string, options?: { critical?: boolean }): HealthReporter;
  /** Every component, in registration order. */
  components(): ComponentHealth[];
  component(name: string): ComponentHealth | undefined;
  readiness(): Readiness;
  /** Marks the agent as shutting down: from now on it is never ready. */
  beginShutdown(): void;
  readonly shuttingDown: boolean;
  /** Calls listener after every change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

const SERVING: ReadonlySet<ComponentState> = new Set(['ready', 'degraded']);

/** True when a component in this state serves traffic. */
export function isServing(state: ComponentState): boolean {
  return SERVING.has(state);
}

const STATES: readonly ComponentState[] = ['starting', 'ready', 'degraded', 'failed', 'stopping'];

/** Creates a health registry; with `metrics`, exports `heimdall_component_state{component,state}`. */
export function createHealthRegistry(options: { metrics?: Registry; now?: () => Date } = {}): HealthRegistry {
  const now = options.now ?? (() => new Date());
  const entries = new Map<string, ComponentHealth>();
  const listeners = new Set<() => void>();
  let shuttingDown = false;

  const gauge = options.metrics
    ? new Gauge({
        name: 'heimdall_component_state',
        help: 'Component lifecycle state: 1 for the current state of each component, 0 for the others.',
        labelNames: ['component', 'state'] as const,
        registers: [options.metrics],
      })
    : undefined;

  const notify = (): void => {
    for (const listener of listeners) listener();
  };
  const record = (entry: ComponentHealth): void => {
    for (const state of STATES) gauge?.set({ component: entry.name, state }, state === entry.state ? 1 : 0);
  };

  return {
    register(name, { critical = true } = {}) {
      if (entries.has(name)) throw new Error(`component ${name} is registered twice`);
      const entry: ComponentHealth = { name, state: 'starting', since: now(), reason: '', critical };
      entries.set(name, entry);
      record(entry);
      notify();
      return {
        get state() {
          return entry.state;
        },
        set(state, reason = '') {
          if (entry.state === state && entry.reason === reason) return;
          if (entry.state !== state) entry.since = now();
          entry.state = state;
          entry.reason = reason;
          record(entry);
          notify();
        },
      };
    },
    components: () => [...entries.values()].map((e) => ({ ...e })),
    component: (name) => {
      const e = entries.get(name);
      return e ? { ...e } : undefined;
    },
    readiness() {
      const reasons: string[] = [];
      if (shuttingDown) reasons.push('agent: shutting down');
      for (const e of entries.values()) {
        if (e.critical && !isServing(e.state)) reasons.push(`${e.name}: ${e.state}${e.reason ? ` (${e.reason})` : ''}`);
      }
      return { ready: reasons.length === 0, reasons };
    },
    beginShutdown() {
      if (shuttingDown) return;
      shuttingDown = true;
      notify();
    },
    get shuttingDown() {
      return shuttingDown;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
