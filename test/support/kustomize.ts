/**
 * Renders a kustomization as `kubectl kustomize` (kustomize v5) does, for the subset our manifests
 * use: `resources` (files and directories), `labels` without selectors, and strategic-merge
 * `patches` (maps merged, `containers`, `initContainers`, `env` and `volumes` merged by name, items
 * and whole resources removed by `$patch: delete`). Anything else throws, so a manifest that starts
 * using more fails its test instead of being rendered wrong. (kubectl is not on every machine that
 * runs the tests; the renderer matched `kubectl kustomize` v5.5.0 on every layout when written.)
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

// Kubernetes objects are deep, loosely typed trees.
/** One Kubernetes object. */
export type K8sObject = Record<string, any>;

const KNOWN_KEYS = new Set(['apiVersion', 'kind', 'resources', 'labels', 'patches']);
/** Lists a strategic merge patch merges by `name` (their patchMergeKey in the Kubernetes API). */
const NAMED_LISTS = new Set(['containers', 'initContainers', 'env', 'volumes']);

/** Parses every YAML document of a file; throws on a YAML error. */
export function loadYaml(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as K8sObject;
  });
}

/** The objects `kubectl kustomize dir` outputs (in the order of `resources`, not kubectl's sorted order). */
export function renderKustomization(dir: string): K8sObject[] {
  const k = loadYaml(join(dir, 'kustomization.yaml'))[0] as K8sObject;
  const unknown = Object.keys(k).filter((key) => !KNOWN_KEYS.has(key));
  if (unknown.length > 0) throw new Error(`${dir}: the test renderer does not support ${unknown.join(', ')}`);
  let objects = ((k.resources ?? []) as string[]).flatMap((r) => (statSync(join(dir, r)).isDirectory() ? renderKustomization(join(dir, r)) : loadYaml(join(dir, r))));
  for (const { pairs, includeSelectors, ...rest } of (k.labels ?? []) as K8sObject[]) {
    if (includeSelectors !== false || Object.keys(rest).length > 0) throw new Error(`${dir}: the test renderer supports labels only with includeSelectors: false`);
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  }
  for (const p of (k.patches ?? []) as K8sObject[]) {
    if (p.target !== undefined || p.options !== undefined) throw new Error(`${dir}: the test renderer supports only strategic merge patches without target`);
    for (const patch of typeof p.patch === 'string' ? parseAllDocuments(p.patch).map((d) => d.toJS() as K8sObject) : loadYaml(join(dir, p.path as string))) objects = applyPatch(objects, patch, dir);
  }
  return objects;
}

function sameObject(a: K8sObject, b: K8sObject): boolean {
  return a.apiVersion === b.apiVersion && a.kind === b.kind && a.metadata?.name === b.metadata?.name;
}

function applyPatch(objects: K8sObject[], patch: K8sObject, dir: string): K8sObject[] {
  if (!objects.some((o) => sameObject(o, patch))) throw new Error(`${dir}: a patch matches no ${patch.kind as string} ${patch.metadata?.name as string}`);
  if (patch.$patch === 'delete') return objects.filter((o) => !sameObject(o, patch));
  return objects.map((o) => (sameObject(o, patch) ? (mergeMap(o, patch, dir)) : o));
}

function mergeMap(target: K8sObject, patch: K8sObject, dir: string): K8sObject {
  const out: K8sObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (Array.isArray(value)) out[key] = mergeList(key, (target[key] ?? []) as K8sObject[], value as K8sObject[], dir);
    else if (typeof value === 'object' && typeof target[key] === 'object' && target[key] !== null) out[key] = mergeMap(target[key] as K8sObject, value as K8sObject, dir);
    else out[key] = value;
  }
  return out;
}

/** As kustomize: the patch's items first (merged into their originals), then the originals the patch does not name. */
function mergeList(key: string, target: K8sObject[], patch: K8sObject[], dir: string): unknown[] {
  if (patch.every((item) => typeof item !== 'object')) return patch;
  if (!NAMED_LISTS.has(key)) throw new Error(`${dir}: the test renderer does not merge lists of ${key}`);
  const named = new Set(patch.map((item) => item.name as string));
  const merged = patch
    .filter((item) => item.$patch !== 'delete')
    .map((item) => {
      const original = target.find((t) => t.name === item.name);
      return original ? mergeMap(original, item, dir) : item;
    });
  return [...merged, ...target.filter((t) => !named.has(t.name as string))];
}
