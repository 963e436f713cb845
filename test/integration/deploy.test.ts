/** The Kubernetes manifests (the base and each overlay, rendered as kustomize does) and the Dockerfile parse and point at ports, paths, files and Secrets that exist. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { substituteEnv } from '../../src/config/substitute.js';
import { configWarnings } from '../../src/config/warnings.js';
import { splitHostPort } from '../../src/config/host-port.js';
import { preloadedAllocator } from '../../src/storage/chdb-unavailable.js';
import { addAdminRoutes } from '../../src/health/admin-routes.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import type { HttpServer } from '../../src/server/http.js';
import { renderKustomization, type K8sObject as Doc } from '../support/kustomize.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** Where the image links jemalloc (the Dockerfile's libjemalloc2 step). */
const JEMALLOC = '/usr/local/lib/libjemalloc.so.2';
const KUSTOMIZE = join(ROOT, 'deploy', 'kubernetes');

/**
 * The Secrets the manifests' comments and the README ask for (kubectl create secret generic ...),
 * each key with a value of the shape it takes.
 */
const SECRETS: Record<string, Record<string, string>> = {
  'heimdall-tokens': { 'tokens.yaml': '- { name: app, token: 0123456789abcdef0123, scopes: [ingest] }\n', 'otlp-headers': 'authorization=Bearer%200123456789abcdef0123' },
  'heimdall-clickhouse': { url: 'http://clickhouse.observability:8123', username: 'heimdall', password: 'a password' },
};

/** The admin listener's real routes, as addAdminRoutes registers them. */
function adminRoutes(): string[] {
  const paths: string[] = [];
  const fake = { route: (_m: string, path: string) => void paths.push(path) } as unknown as HttpServer;
  addAdminRoutes(fake, { version: '', build: '', startedAt: new Date(), configHash: '', registry: createHealthRegistry() }, new Registry(), validateConfig({}).telemetry.metrics);
  return paths;
}

/** A container's environment as the kubelet would set it: values, Secret keys, downward-API fields (as "<fieldPath>"). */
function containerEnv(container: Doc): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of (container.env ?? []) as Doc[]) {
    const ref = e.valueFrom?.secretKeyRef as Doc | undefined;
    env[e.name as string] = ref ? SECRETS[ref.name as string]?.[ref.key as string] : e.valueFrom?.fieldRef ? `<${e.valueFrom.fieldRef.fieldPath as string}>` : (e.value as string);
  }
  return env;
}

/** The workloads of a rendered layout and the parts every test looks at. */
function layout(dir: string) {
  const all = renderKustomization(join(KUSTOMIZE, dir));
  const workloads = all.filter((d) => ['Deployment', 'DaemonSet', 'Job'].includes(d.kind as string));
  const containersOf = (w: Doc): Doc[] => [...((w.spec.template.spec.initContainers ?? []) as Doc[]), ...(w.spec.template.spec.containers as Doc[])];
  const agent = workloads.find((w) => w.kind !== 'Job' && containersOf(w).some((c) => c.name === 'heimdall')) as Doc;
  const configMap = all.find((d) => d.kind === 'ConfigMap') as Doc;
  /** heimdall.yaml as a container with this environment reads it. */
  const configFor = (container: Doc): Config => validateConfig(substituteEnv(parseAllDocuments(configMap.data['heimdall.yaml'] as string)[0]?.toJS(), containerEnv(container)));
  const sidecar = containersOf(agent).find((c) => c.name === 'heimdall') as Doc;
  const pod = agent.spec.template.spec as Doc;
  return { all, workloads, containersOf, agent, pod, sidecar, configMap, config: configFor(sidecar), configFor, job: all.find((d) => d.kind === 'Job'), app: all.find((d) => d.kind === 'Deployment') as Doc };
}

describe.each([
  ['base', 'base'],
  ['overlays/embedded', 'overlays/embedded'],
  ['overlays/daemonset', 'overlays/daemonset'],
])('deploy/kubernetes/%s', (_name, dir) => {
  const l = layout(dir);
  const { sidecar, pod, config, configMap } = l;
  const portByName = new Map((sidecar.ports as Doc[]).map((p) => [p.name as string, p.containerPort as number]));

  it('has a ConfigMap whose heimdall.yaml, with the Secrets in the environment, is a valid configuration without settings that work against each other', () => {
    expect(configWarnings(config)).toEqual([]);
    expect(config.server.admin.address).toBe('0.0.0.0:9464');
    expect(config.auth.enabled).toBe(true);
  });

  it('preloads jemalloc, from the path the image links it to, exactly where storage is a ClickHouse server (the embedded engine aborts with it)', () => {
    const env = containerEnv(sidecar);
    const server = (config.storage.mode ?? (config.storage.clickhouse.url ? 'server' : 'embedded')) === 'server';
    expect(env.LD_PRELOAD).toBe(server ? JEMALLOC : undefined);
    expect(env.MALLOC_CONF).toBe(server ? 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1,tcache:false' : undefined);
    expect(preloadedAllocator(env)).toBe(server ? JEMALLOC : undefined);
  });

  it('refers only to the Secrets and keys it documents, and every $(VAR) to a variable defined above it', () => {
    for (const w of l.workloads) {
      for (const c of l.containersOf(w)) {
        const defined = new Set<string>();
        for (const e of (c.env ?? []) as Doc[]) {
          const ref = e.valueFrom?.secretKeyRef as Doc | undefined;
          if (ref) expect(Object.keys(SECRETS[ref.name as string] ?? {}), `${c.name as string} ${e.name as string}`).toContain(ref.key);
          for (const [, name] of String(e.value ?? '').matchAll(/\$\((\w+)\)/g)) expect(defined, `${c.name as string} ${e.name as string}`).toContain(name);
          defined.add(e.name as string);
        }
      }
      for (const v of (w.spec.template.spec.volumes ?? []) as Doc[]) if (v.secret) expect(Object.keys(SECRETS)).toContain(v.secret.secretName);
    }
    const tokens = (pod.volumes as Doc[]).find((v) => v.secret?.secretName === 'heimdall-tokens') as Doc;
    const mount = (sidecar.volumeMounts as Doc[]).find((m) => m.name === tokens.name) as Doc;
    expect(config.auth.tokens_file).toBe(`${mount.mountPath as string}/tokens.yaml`);
  });

  it('runs the agent with its config mounted where HEIMDALL_CONFIG points, every path it writes on a writable mount', () => {
    const configPath = containerEnv(sidecar).HEIMDALL_CONFIG as string;
    const mount = (sidecar.volumeMounts as Doc[]).find((m) => configPath.startsWith(`${m.mountPath as string}/`)) as Doc;
    const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name) as Doc;
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(configPath.slice((mount.mountPath as string).length + 1)).toBe('heimdall.yaml');
    expect(sidecar.securityContext.readOnlyRootFilesystem).toBe(true);
    const written = [config.ingest.queue.path, config.jobs.export_dir, ...(config.storage.mode !== 'server' ? [config.storage.embedded.path] : [])];
    for (const path of written) {
      const m = (sidecar.volumeMounts as Doc[]).find((v) => path === v.mountPath || path.startsWith(`${v.mountPath as string}/`));
      expect(m, path).toBeDefined();
      expect(m?.readOnly, path).toBeFalsy();
    }
    expect((pod.volumes as Doc[]).map((v) => v.name)).toEqual(expect.arrayContaining((sidecar.volumeMounts as Doc[]).map((m) => m.name)));
    expect(sidecar.resources.requests.memory).toBeDefined();
    expect(sidecar.resources.limits.memory).toBeDefined();
  });

  it('declares the configured ports and probes real admin paths on the admin port', () => {
    expect(portByName.get('otlp-grpc')).toBe(splitHostPort(config.server.grpc.address)?.port);
    expect(portByName.get('otlp-http')).toBe(splitHostPort(config.server.otlp_http.address)?.port);
    expect(portByName.get('admin')).toBe(splitHostPort(config.server.admin.address)?.port);
    const routes = adminRoutes();
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const get = sidecar[probe].httpGet as Doc;
      expect(routes).toContain(get.path);
      expect(portByName.get(get.port as string)).toBe(9464);
    }
    // The pod-facing readiness, which backends never turn off; the startup probe waits for the data listeners through it.
    expect(sidecar.readinessProbe.httpGet.path).toBe('/readyz');
    expect(sidecar.startupProbe.httpGet.path).toBe('/readyz');
    expect(sidecar.livenessProbe.httpGet.path).toBe('/livez');
  });

  it('points the sample app\'s OpenTelemetry SDK at the sidecar port that speaks the protocol it sets', () => {
    // OTEL_EXPORTER_OTLP_ENDPOINT alone means the SDK's default protocol (http/protobuf in most):
    // against the gRPC port it fails ("Parse Error: Expected HTTP/"). The pair is explicit and agrees.
    // The application is in the agent's pod (sidecar) or a workload of its own (DaemonSet).
    const apps = l.workloads.flatMap(l.containersOf).filter((c) => (c.env as Doc[] | undefined)?.some((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT'));
    expect(apps.length).toBeGreaterThan(0);
    for (const app of apps) {
      const env = new Map((app.env as Doc[]).map((e) => [e.name as string, e.value as string | undefined]));
      const protocol = env.get('OTEL_EXPORTER_OTLP_PROTOCOL');
      const listener = protocol === 'grpc' ? config.server.grpc : protocol === 'http/protobuf' || protocol === 'http/json' ? config.server.otlp_http : undefined;
      expect(listener, `${app.name as string}: OTEL_EXPORTER_OTLP_PROTOCOL=${String(protocol)}`).toBeDefined();
      const endpoint = new URL((env.get('OTEL_EXPORTER_OTLP_ENDPOINT') ?? '').replace('$(K8S_NODE_IP)', 'node-ip'));
      const [host, port] = (listener?.address ?? '').split(':');
      // The port that speaks the protocol; the host is the listener's own, or any host when it binds every address.
      expect(endpoint.port).toBe(port);
      expect(host === '0.0.0.0' || endpoint.hostname === host, `${endpoint.hostname} reaches ${listener?.address ?? ''}`).toBe(true);
    }
  });

  it('is scraped by Prometheus once: through the annotated Service at the admin port and /metrics, not the pod too', () => {
    const services = l.all.filter((d) => d.kind === 'Service');
    expect(services).toHaveLength(1);
    const service = services[0] as Doc;
    const annotations = service.metadata.annotations as Doc;
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(Number(annotations['prometheus.io/port'])).toBe(portByName.get('admin'));
    expect(adminRoutes()).toContain(annotations['prometheus.io/path']);
    expect((l.agent.spec.template.metadata.annotations as Doc | undefined)?.['prometheus.io/scrape']).toBeUndefined();
    expect(portByName.has(service.spec.ports[0].targetPort as string)).toBe(true);
    expect(service.spec.selector).toEqual(l.agent.spec.selector.matchLabels);
  });

  it('fits its data to the volume and its memory to the container limit', () => {
    const dataMount = (sidecar.volumeMounts as Doc[]).find((m) => config.ingest.queue.path.startsWith(`${m.mountPath as string}/`)) as Doc;
    const volume = (pod.volumes as Doc[]).find((v) => v.name === dataMount.name) as Doc;
    const sizeLimit = quantity(volume.emptyDir.sizeLimit as string);
    // Every writer on the volume has a budget, and together they stay under 90% of its sizeLimit
    // (past it, the kubelet evicts the whole pod).
    const store = config.storage.mode !== 'server' ? [config.storage.embedded.max_size ?? Infinity] : [];
    const budgets = [...store, config.ingest.queue.max_size, config.ingest.queue.dead_letter_max_size, config.jobs.export_max_size];
    expect(budgets.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(0.9 * sizeLimit);
    // The embedded engine's measured peak (README, bench:ingest over 10 minutes: 881 MiB) plus the
    // decoded data the memory limiter lets the pipeline hold stay inside the container's memory limit.
    const EMBEDDED_PEAK = config.storage.mode !== 'server' ? 881 * 2 ** 20 : 0;
    expect(EMBEDDED_PEAK + config.ingest.memory.limit).toBeLessThanOrEqual(quantity(sidecar.resources.limits.memory as string));
  });
});

describe.each([['base'], ['overlays/daemonset']])('deploy/kubernetes/%s: shared ClickHouse', (dir) => {
  const l = layout(dir);

  it('writes to the ClickHouse server named by the heimdall-clickhouse Secret, and runs no DDL itself', () => {
    const ch = SECRETS['heimdall-clickhouse'] ?? {};
    expect(l.config.storage.mode).toBe('server');
    expect(l.config.storage.clickhouse).toMatchObject({ url: ch.url, username: ch.username, password: ch.password });
    expect(l.config.storage.migrate_on_start).toBe(false);
  });

  it('applies the schema in one migration Job, with the same storage settings as the agents', () => {
    const job = l.job as Doc;
    expect(job).toBeDefined();
    const [container, ...others] = job.spec.template.spec.containers as Doc[];
    expect(others).toEqual([]);
    expect(container?.args).toEqual(['migrate']);
    expect(container?.image).toBe(l.sidecar.image);
    expect(job.spec.template.spec.restartPolicy).toBe('OnFailure');
    const configPath = containerEnv(container as Doc).HEIMDALL_CONFIG as string;
    const mount = (container?.volumeMounts as Doc[]).find((m) => configPath === `${m.mountPath as string}/heimdall.yaml`) as Doc;
    expect((job.spec.template.spec.volumes as Doc[]).find((v) => v.name === mount.name)?.configMap.name).toBe(l.configMap.metadata.name);
    const jobConfig = l.configFor(container as Doc);
    expect(jobConfig.storage).toEqual(l.config.storage);
    expect(container?.securityContext.readOnlyRootFilesystem).toBe(true);
  });
});

describe('deploy/kubernetes/base', () => {
  const l = layout('base');
  it('runs Heimdall as a native sidecar with its data ports on loopback', () => {
    expect(l.agent.kind).toBe('Deployment');
    expect(l.sidecar.restartPolicy).toBe('Always');
    expect(l.pod.initContainers).toContain(l.sidecar);
    expect(splitHostPort(l.config.server.grpc.address)?.host).toBe('127.0.0.1');
    expect(splitHostPort(l.config.server.otlp_http.address)?.host).toBe('127.0.0.1');
  });
});

describe('deploy/kubernetes/overlays/embedded', () => {
  const l = layout('overlays/embedded');
  it('keeps the store in the one pod: embedded, migrated at start, no ClickHouse Secret or migration Job', () => {
    expect(l.config.storage.mode).toBe('embedded');
    expect(l.config.storage.migrate_on_start).toBe(true);
    expect(l.job).toBeUndefined();
    expect(JSON.stringify(l.all)).not.toContain('heimdall-clickhouse');
    expect(l.agent.spec.replicas).toBe(1);
    expect(l.sidecar.restartPolicy).toBe('Always');
  });
});

describe('deploy/kubernetes/overlays/daemonset', () => {
  const l = layout('overlays/daemonset');
  const portByName = new Map((l.sidecar.ports as Doc[]).map((p) => [p.name as string, p]));

  it('runs one agent per node, its data ports on host ports and bound beyond loopback, with auth on', () => {
    expect(l.agent.kind).toBe('DaemonSet');
    for (const [name, address] of [['otlp-grpc', l.config.server.grpc.address], ['otlp-http', l.config.server.otlp_http.address]] as const) {
      expect(splitHostPort(address)?.host).toBe('0.0.0.0');
      expect(portByName.get(name)?.hostPort).toBe(splitHostPort(address)?.port);
    }
    expect(portByName.get('admin')?.hostPort).toBeUndefined();
    expect(l.pod.hostNetwork).toBeUndefined();
    expect(l.config.auth.enabled).toBe(true);
    // Two pods of one node cannot hold a host port at once: no surge.
    expect(l.agent.spec.updateStrategy.rollingUpdate).toEqual({ maxUnavailable: 1, maxSurge: 0 });
    // The agent serves every pod of the node: its own pod name must not land on their data.
    expect(Object.keys(containerEnv(l.sidecar))).not.toContain('K8S_POD_NAME');
    expect(Object.keys(containerEnv(l.sidecar))).not.toContain('K8S_NAMESPACE_NAME');
  });

  it('has the app send to the agent of its node (status.hostIP, gRPC, an ingest token), without a sidecar', () => {
    expect(l.containersOf(l.app).map((c) => c.name)).toEqual(['app']);
    expect(l.app.spec.template.spec.volumes).toEqual([]);
    const app = l.containersOf(l.app)[0] as Doc;
    const env = containerEnv(app);
    expect(env.K8S_NODE_IP).toBe('<status.hostIP>');
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(`http://$(K8S_NODE_IP):${splitHostPort(l.config.server.grpc.address)?.port}`);
    expect(env.OTEL_EXPORTER_OTLP_PROTOCOL).toBe('grpc');
    expect(env.OTEL_EXPORTER_OTLP_HEADERS).toBe(SECRETS['heimdall-tokens']?.['otlp-headers']);
    expect(env.OTEL_RESOURCE_ATTRIBUTES).toBe('k8s.pod.name=$(K8S_POD_NAME),k8s.namespace.name=$(K8S_NAMESPACE_NAME)');
  });
});

/** A Kubernetes quantity in bytes ("2Gi", "1280Mi", "512M"). */
function quantity(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  it('is multi-stage on Node 24, runs as non-root and exposes every default port', () => {
    const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(froms.every((f) => f?.startsWith('node:24'))).toBe(true);
    expect(text).toMatch(/^USER node$/m);
    const exposed = (/^EXPOSE (.+)$/m.exec(text)?.[1] ?? '').split(/\s+/).map(Number);
    const defaults = validateConfig({});
    for (const address of [defaults.server.grpc.address, defaults.server.otlp_http.address, defaults.server.admin.address]) expect(exposed).toContain(splitHostPort(address)?.port);
    expect(text).toContain('--omit=dev');
    // The default paths the agent writes (relative to WORKDIR /app) exist and belong to that user.
    const chowned = /^RUN mkdir -p .* && chown node:node (.+)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
    for (const path of [defaults.storage.embedded.path, defaults.ingest.queue.path, defaults.jobs.export_dir]) expect(chowned).toContain(join('/app', path));
  });
  it('starts the agent with the footprint settings bench:foundation measures: a small young generation, 2 malloc arenas, jemalloc at hand, a compile cache made at build', () => {
    expect(JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(text)?.[1] ?? '[]')).toEqual(['node', '--max-semi-space-size=4', 'dist/bundle/main.js']);
    expect(text).toMatch(/^ENV MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=131072$/m);
    // jemalloc installed and linked where the manifests preload it, but not preloaded by the image (the default config is embedded).
    expect(text).toMatch(/^RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 /m);
    expect(text).toContain(`ln -s "$(find /usr/lib -name libjemalloc.so.2 -print -quit)" ${JEMALLOC}`);
    expect(text).not.toMatch(/^ENV .*LD_PRELOAD/m);
    const cache = /^ENV NODE_COMPILE_CACHE=(\S+)$/m.exec(text)?.[1];
    expect(cache).toBe('/app/.node-compile-cache');
    // Made as root before USER node, then handed to that user (Node updates it at exit).
    expect(text.indexOf(`chown -R node:node ${String(cache)}`)).toBeGreaterThan(0);
    expect(text.indexOf(`chown -R node:node ${String(cache)}`)).toBeLessThan(text.indexOf('USER node'));
  });
  it("builds the native memory module (unmapping the engine's code, malloc_trim) in a stage with a compiler, fails without it, and ships it in dist/", () => {
    expect(text).toMatch(/^FROM node:24-bookworm AS build$/m);
    expect(text).toMatch(/^COPY scripts\/build-agent\.mjs scripts\/build-native\.mjs /m);
    expect(text).toMatch(/^RUN node scripts\/build-native\.mjs && test -f dist\/native\/memory\.node$/m);
    expect(text).toMatch(/^COPY --from=build \/src\/dist \.\/dist$/m);
  });
});
