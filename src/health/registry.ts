import { Gauge, type Registry } from 'prom-client';

/** Lifecycle state of a component. `ready` and `degraded` serve traffic; the others do not. */
export type ComponentState = 'starting' | 'ready' | 'degraded' | 'failed' | 'stopping';

/**
 * Which readiness a component gates. `pod`: the pod-facing readiness (`/readyz`, gRPC health `""`),
 * only for what local clients need (listeners, configuration, pipeline). `strict`: the
 * backend-aware readiness (`/readyz/strict`) as well, for backends whose outage must not take
 * the application beside the agent out of service (storage, durable queue, system check).
 * `none`: reported in `/status` and metrics only.
 */
export type ReadinessGate = 'pod' | 'strict' | 'none';

/** One component's health as the registry knows it. */
export interface ComponentHealth {
  name: string;
  state: ComponentState;
  since: Date;
  /** Why it is in this state; empty when ready. */
  reason: string;
  /** Which readiness waits for this component. */
  gate: ReadinessGate;
}

/** A component's handle for reporting its own state. */
export interface HealthReporter {
  /** Records a new state; a repeated identical report changes nothing (`since` is kept). */
  set(state: ComponentState, reason?: string): void;
  readonly state: ComponentState;
}

/** Whether the agent is ready, with the reasons when it is not. */
export interface Readiness {
  ready: boolean;
  /** `name: state (reason)` of each component that holds it off (reasons may quote backend errors). */
  reasons: string[];
  /** The same as `name: state` only, for unauthenticated probes. */
  blocking: string[];
}

/** The agent's health in one word, with what makes it so. */
export interface OverallHealth {
  /** `not ready`: the pod-facing readiness is off; `degraded`: it is on, but some component is not `ready`. */
  status: 'ok' | 'degraded' | 'not ready';
  /** The pod-facing readiness. */
  ready: boolean;
  /** The backend-aware readiness. */
  strictReady: boolean;
  /** Why the pod-facing readiness is off. */
  reasons: string[];
  /** Every component that is not `ready`, with its state and reason (backend outages show here). */
  degraded: string[];
}

/** The agent's component health registry, read by grpc.health.v1, the probes and /status. */
export interface HealthRegistry {
  /** Adds a component in state `starting`; it gates the pod readiness unless `gate` says otherwise. Registering a name twice throws. */
  register(name: string, options?: { gate?: ReadinessGate }): HealthReporter;
  /** Every component, in registration order. */
  components(): ComponentHealth[];
  component(name: string): ComponentHealth | undefined;
  /** Pod-facing readiness: not shutting down and every `pod` component serving. Backends never turn it off. */
  readiness(): Readiness;
  /** Backend-aware readiness: the pod readiness and every `strict` component serving. */
  strictReadiness(): Readiness;
  /** Both readinesses and the components that are not `ready`. */
  overall(): OverallHealth;
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

/** `name: state (reason)`, as the probes and the status list a component. */
export const describeComponent = (e: ComponentHealth): string => `${e.name}: ${e.state}${e.reason ? ` (${e.reason})` : ''}`;

const POD: ReadonlySet<ReadinessGate> = new Set(['pod']);
const STRICT: ReadonlySet<ReadinessGate> = new Set(['pod', 'strict']);

/** The readiness that waits for the components of `gates`: off while shutting down or while any of them does not serve. */
export function readinessOf(components: Iterable<ComponentHealth>, gates: ReadonlySet<ReadinessGate>, shuttingDown: boolean): Readiness {
  const held = [...components].filter((e) => gates.has(e.gate) && !isServing(e.state));
  const agent = shuttingDown ? ['agent: shutting down'] : [];
  return { ready: agent.length + held.length === 0, reasons: [...agent, ...held.map(describeComponent)], blocking: [...agent, ...held.map((e) => `${e.name}: ${e.state}`)] };
}

/** Registers `heimdall_component_state{component,state}`; returns what records an entry's current state in it. */
function componentStateGauge(metrics: Registry): (entry: ComponentHealth) => void {
  const gauge = new Gauge({
    name: 'heimdall_component_state',
    help: 'Component lifecycle state: 1 for the current state of each component, 0 for the others.',
    labelNames: ['component', 'state'] as const,
    registers: [metrics],
  });
  return (entry) => {
    for (const state of STATES) gauge.set({ component: entry.name, state }, state === entry.state ? 1 : 0);
  };
}

/** Registers `heimdall_ready{probe="pod"|"strict"}`, read from the registry at each scrape. */
function readyGauge(metrics: Registry, registry: HealthRegistry): void {
  new Gauge({
    name: 'heimdall_ready',
    help: 'Whether the agent is ready (1) or not (0): probe="pod" is what /readyz answers, probe="strict" also needs every backend (/readyz/strict).',
    labelNames: ['probe'] as const,
    registers: [metrics],
    collect() {
      this.set({ probe: 'pod' }, registry.readiness().ready ? 1 : 0);
      this.set({ probe: 'strict' }, registry.strictReadiness().ready ? 1 : 0);
    },
  });
}

/** The reporter of one entry: a new state or reason updates it (a new state restamps `since`) and calls `changed`; a repeat does nothing. */
function reporterOf(entry: ComponentHealth, now: () => Date, changed: (entry: ComponentHealth) => void): HealthReporter {
  return {
    get state() {
      return entry.state;
    },
    set(state, reason = '') {
      if (entry.state === state && entry.reason === reason) return;
      if (entry.state !== state) entry.since = now();
      entry.state = state;
      entry.reason = reason;
      changed(entry);
    },
  };
}

/**
 * Creates a health registry: the components' entries, the shutdown flag and the change listeners.
 * With `metrics`, exports `heimdall_component_state{component,state}` and `heimdall_ready{probe="pod"|"strict"}`.
 */
export function createHealthRegistry(options: { metrics?: Registry; now?: () => Date } = {}): HealthRegistry {
  const now = options.now ?? (() => new Date());
  const entries = new Map<string, ComponentHealth>();
  const listeners = new Set<() => void>();
  let shuttingDown = false;
  const record = options.metrics ? componentStateGauge(options.metrics) : undefined;
  const notify = (): void => {
    for (const listener of listeners) listener();
  };
  const changed = (entry: ComponentHealth): void => {
    record?.(entry);
    notify();
  };

  const registry: HealthRegistry = {
    register(name, { gate = 'pod' } = {}) {
      if (entries.has(name)) throw new Error(`component ${name} is registered twice`);
      const entry: ComponentHealth = { name, state: 'starting', since: now(), reason: '', gate };
      entries.set(name, entry);
      changed(entry);
      return reporterOf(entry, now, changed);
    },
    components: () => [...entries.values()].map((e) => ({ ...e })),
    component: (name) => {
      const e = entries.get(name);
      return e ? { ...e } : undefined;
    },
    readiness: () => readinessOf(entries.values(), POD, shuttingDown),
    strictReadiness: () => readinessOf(entries.values(), STRICT, shuttingDown),
    overall() {
      const pod = registry.readiness();
      const strict = registry.strictReadiness();
      const degraded = [...entries.values()].filter((e) => e.state !== 'ready').map(describeComponent);
      return { status: !pod.ready ? 'not ready' : degraded.length > 0 ? 'degraded' : 'ok', ready: pod.ready, strictReady: strict.ready, reasons: pod.reasons, degraded };
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
  if (options.metrics) readyGauge(options.metrics, registry);
  return registry;
}
