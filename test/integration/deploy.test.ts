/** The Kubernetes manifests and Dockerfile parse and point at ports, paths and files that exist. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { substituteEnv } from '../../src/config/substitute.js';
import { configWarnings } from '../../src/config/warnings.js';
import { splitHostPort } from '../../src/config/units.js';
import { addAdminRoutes } from '../../src/health/admin-routes.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import type { HttpServer } from '../../src/server/http.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BASE = join(ROOT, 'deploy', 'kubernetes', 'base');

// Kubernetes objects are deep, loosely typed trees; the assertions check their shape.
type Doc = Record<string, any>;
function load(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(join(BASE, file), 'utf8'));
  for (const d of docs) expect(d.errors).toEqual([]);
  return docs.map((d) => d.toJS() as Doc);
}

/** The admin listener's real routes, as addAdminRoutes registers them. */
function adminRoutes(): string[] {
  const paths: string[] = [];
  const fake = { route: (_m: string, path: string) => void paths.push(path) } as unknown as HttpServer;
  addAdminRoutes(fake, { version: '', build: '', startedAt: new Date(), configHash: '', registry: createHealthRegistry() }, new Registry(), validateConfig({}).telemetry.metrics);
  return paths;
}

describe('deploy/kubernetes/base', () => {
  const kustomization = load('kustomization.yaml')[0] as Doc;
  const all = (kustomization.resources as string[]).flatMap((f) => {
    expect(existsSync(join(BASE, f))).toBe(true);
    return load(f);
  });
  const configMap = all.find((d) => d.kind === 'ConfigMap') as Doc;
  const deployment = all.find((d) => d.kind === 'Deployment') as Doc;
  const service = all.find((d) => d.kind === 'Service') as Doc;
  const pod = deployment.spec.template.spec as Doc;
  const sidecar = (pod.initContainers as Doc[]).find((c) => c.name === 'heimdall') as Doc;
  const config = validateConfig(substituteEnv(parseAllDocuments(configMap.data['heimdall.yaml'] as string)[0]?.toJS(), {}));
  const portByName = new Map((sidecar.ports as Doc[]).map((p) => [p.name as string, p.containerPort as number]));

  it('has a ConfigMap whose heimdall.yaml is a valid configuration, without settings that work against each other', () => {
    expect(configWarnings(config)).toEqual([]);
    expect(config.server.admin.address).toBe('0.0.0.0:9464');
    expect(splitHostPort(config.server.grpc.address)?.host).toBe('127.0.0.1');
  });

  it('runs Heimdall as a native sidecar with its config mounted where HEIMDALL_CONFIG points', () => {
    expect(sidecar.restartPolicy).toBe('Always');
    const env = new Map((sidecar.env as Doc[]).map((e) => [e.name as string, e]));
    const configPath = env.get('HEIMDALL_CONFIG')?.value as string;
    const mount = (sidecar.volumeMounts as Doc[]).find((m) => configPath.startsWith(`${m.mountPath as string}/`)) as Doc;
    const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name) as Doc;
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(configPath.slice((mount.mountPath as string).length + 1)).toBe('heimdall.yaml');
    // The root file system is read-only: every path the agent writes is on a writable mount.
    expect(sidecar.securityContext.readOnlyRootFilesystem).toBe(true);
    for (const path of [config.storage.embedded.path, config.ingest.queue.path, config.jobs.export_dir]) {
      const mount = (sidecar.volumeMounts as Doc[]).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath as string}/`));
      expect(mount, path).toBeDefined();
      expect(mount?.readOnly, path).toBeFalsy();
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
    const apps = (pod.containers as Doc[]).filter((c) => (c.env as Doc[] | undefined)?.some((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT'));
    expect(apps.length).toBeGreaterThan(0);
    for (const app of apps) {
      const env = new Map((app.env as Doc[]).map((e) => [e.name as string, e.value as string | undefined]));
      const protocol = env.get('OTEL_EXPORTER_OTLP_PROTOCOL');
      const listener = protocol === 'grpc' ? config.server.grpc : protocol === 'http/protobuf' || protocol === 'http/json' ? config.server.otlp_http : undefined;
      expect(listener, `${app.name as string}: OTEL_EXPORTER_OTLP_PROTOCOL=${String(protocol)}`).toBeDefined();
      const endpoint = new URL(env.get('OTEL_EXPORTER_OTLP_ENDPOINT') ?? '');
      expect(`${endpoint.hostname}:${endpoint.port}`).toBe(listener?.address);
    }
  });

  it('is scraped by Prometheus once: through the annotated Service at the admin port and /metrics, not the pod too', () => {
    const annotations = service.metadata.annotations as Doc;
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(Number(annotations['prometheus.io/port'])).toBe(portByName.get('admin'));
    expect(adminRoutes()).toContain(annotations['prometheus.io/path']);
    expect((deployment.spec.template.metadata.annotations as Doc | undefined)?.['prometheus.io/scrape']).toBeUndefined();
    expect(portByName.has(service.spec.ports[0].targetPort as string)).toBe(true);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
  });

  it('fits its data to the volume and its memory to the container limit', () => {
    const dataMount = (sidecar.volumeMounts as Doc[]).find((m) => config.storage.embedded.path.startsWith(m.mountPath as string)) as Doc;
    const volume = (pod.volumes as Doc[]).find((v) => v.name === dataMount.name) as Doc;
    const sizeLimit = quantity(volume.emptyDir.sizeLimit as string);
    // Every writer on the volume has a budget, and together they stay under 90% of its sizeLimit
    // (past it, the kubelet evicts the whole pod).
    const budgets = [config.storage.embedded.max_size ?? Infinity, config.ingest.queue.max_size, config.ingest.queue.dead_letter_max_size, config.jobs.export_max_size];
    expect(budgets.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(0.9 * sizeLimit);
    // The engine's measured peak (README, bench:ingest over 10 minutes: 881 MiB) plus the decoded
    // data the memory limiter lets the pipeline hold stay inside the container's memory limit.
    const EMBEDDED_PEAK = 881 * 2 ** 20;
    expect(EMBEDDED_PEAK + config.ingest.memory.limit).toBeLessThanOrEqual(quantity(sidecar.resources.limits.memory as string));
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
});
