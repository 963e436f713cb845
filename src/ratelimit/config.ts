import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, LineCounter, parseDocument, type Node } from 'yaml';
import { z } from '../config/zod.js';
import { UNIT_SECONDS, type DescriptorNode, type RateLimitConfig, type Unit } from './limits.js';


const rateLimit = z.strictObject({
  unit: z.enum(Object.keys(UNIT_SECONDS) as [Unit, ...Unit[]]).optional(),
  requests_per_unit: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  unlimited: z.boolean().default(false),
  name: z.string().min(1).optional(),
  replaces: z.array(z.strictObject({ name: z.string().min(1) })).default([]),
  /** Heimdall: bucket capacity; default requests_per_unit. */
  burst: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  /** Heimdall: where the bucket lives. */
  backend: z.enum(['local', 'redis']).default('local'),
});

type DescriptorInput = {
  key: string;
  value?: string | undefined;
  rate_limit?: z.input<typeof rateLimit> | undefined;
  descriptors?: DescriptorInput[] | undefined;
  shadow_mode?: boolean | undefined;
  detailed_metric?: boolean | undefined;
  honeypot?: string | undefined;
};

const descriptor: z.ZodType<DescriptorInput> = z.lazy(() =>
  z.strictObject({
    key: z.string().min(1),
    value: z.string().min(1).optional(),
    rate_limit: rateLimit.optional(),
    descriptors: z.array(descriptor).optional(),
    shadow_mode: z.boolean().optional(),
    detailed_metric: z.boolean().optional(),
    /** Heimdall: a trap, naming a honeypot of ratelimit.security.automation.honeypots; a request descriptor matching this one is a hit. */
    honeypot: z.string().min(1).optional(),
  }),
);

// A file without descriptors limits nothing: most likely a mistake (or a file cut short), so it is refused and the previous limits stay.
const domainFile = z.strictObject({ domain: z.string().min(1), descriptors: z.array(descriptor, { error: 'is required: a list of at least one descriptor' }).min(1, 'needs at least one descriptor') });


/** A configuration file that cannot be used: the file, the line and the reason. */
export class RateLimitConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${reason}`);
  }
}

const node = (): DescriptorNode => ({ limit: undefined, children: new Map(), wildcards: new Map(), honeypot: undefined });

/** The YAML node at a zod issue path, for its line number. */
function nodeAt(root: Node | null | undefined, path: ReadonlyArray<PropertyKey>): Node | undefined {
  let cur: unknown = root;
  for (const p of path) {
    if (cur && typeof cur === 'object' && 'get' in cur && typeof (cur).get === 'function') {
      const next = (cur as { get(k: unknown, keepScalar: boolean): unknown }).get(typeof p === 'number' ? p : String(p), true);
      if (next === undefined) break;
      cur = next;
    } else break;
  }
  return cur as Node | undefined;
}

function addDescriptors(file: string, parent: DescriptorNode, list: DescriptorInput[], prefix: string): void {
  for (const d of list) {
    const child = node();
    child.honeypot = d.honeypot;
    const path = `${prefix}.${d.key}${d.value !== undefined ? `_${d.value}` : ''}`;
    if (d.rate_limit) {
      const r = rateLimit.parse(d.rate_limit);
      if (!r.unlimited && (r.unit === undefined || r.requests_per_unit === undefined)) throw new RateLimitConfigError(file, undefined, `${path}: rate_limit needs unit and requests_per_unit (or unlimited: true)`);
      const unit = r.unit ?? 'second';
      const rpu = r.requests_per_unit ?? 0;
      child.limit = {
        name: r.name,
        unit,
        requestsPerUnit: rpu,
        capacity: r.burst ?? rpu,
        unlimited: r.unlimited,
        replaces: r.replaces.map((x) => x.name),
        backend: r.backend,
        shadowMode: d.shadow_mode ?? false,
        detailedMetric: d.detailed_metric ?? false,
        path,
      };
    }
    if (d.descriptors) addDescriptors(file, child, d.descriptors, path);
    if (d.value !== undefined && d.value.endsWith('*')) {
      const list2 = parent.wildcards.get(d.key) ?? [];
      list2.push({ prefix: d.value.slice(0, -1), node: child });
      list2.sort((a, b) => b.prefix.length - a.prefix.length);
      parent.wildcards.set(d.key, list2);
      continue;
    }
    const k = d.value !== undefined ? `${d.key}_${d.value}` : d.key;
    if (parent.children.has(k)) throw new RateLimitConfigError(file, undefined, `${path}: duplicate descriptor`);
    parent.children.set(k, child);
  }
}

/** The path (in the file's mapping) of the first `honeypot:` that names none of `known`, and its name. */
function unknownHoneypot(list: DescriptorInput[], known: ReadonlySet<string>, path: PropertyKey[]): { path: PropertyKey[]; name: string } | undefined {
  for (const [i, d] of list.entries()) {
    if (d.honeypot !== undefined && !known.has(d.honeypot)) return { path: [...path, i, 'honeypot'], name: d.honeypot };
    const nested = d.descriptors && unknownHoneypot(d.descriptors, known, [...path, i, 'descriptors']);
    if (nested) return nested;
  }
  return undefined;
}

/**
 * Parses one envoyproxy/ratelimit YAML file into its domain and tree. A `honeypot:` must name one
 * of `honeypots` (ratelimit.security.automation.honeypots), else a RateLimitConfigError at its line.
 */
export function parseDomainFile(file: string, text: string, honeypots: ReadonlySet<string> = new Set()): { domain: string; root: DescriptorNode } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const yamlError = doc.errors[0];
  if (yamlError) throw new RateLimitConfigError(file, yamlError.linePos?.[0].line, yamlError.message.split('\n')[0] ?? 'invalid YAML');
  if (!isMap(doc.contents)) throw new RateLimitConfigError(file, 1, 'expected a mapping with "domain" and "descriptors"');
  const parsed = domainFile.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = nodeAt(doc.contents, issue?.path ?? []);
    const line = at?.range ? lineCounter.linePos(at.range[0]).line : undefined;
    throw new RateLimitConfigError(file, line, `${(issue?.path ?? []).join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const unknown = unknownHoneypot(parsed.data.descriptors, honeypots, ['descriptors']);
  if (unknown) {
    const at = nodeAt(doc.contents, unknown.path);
    const configured = honeypots.size > 0 ? `configured: ${[...honeypots].join(', ')}` : 'none is configured';
    throw new RateLimitConfigError(file, at?.range ? lineCounter.linePos(at.range[0]).line : undefined, `${unknown.path.join('.')}: unknown honeypot ${JSON.stringify(unknown.name)} (ratelimit.security.automation.honeypots; ${configured})`);
  }
  const root = node();
  addDescriptors(file, root, parsed.data.descriptors, parsed.data.domain);
  return { domain: parsed.data.domain, root };
}

/**
 * Loads a file, or every `.yaml` / `.yml` file of a directory (as a Kubernetes ConfigMap mounts
 * them), its `honeypot:` keys naming `honeypots`. Throws RateLimitConfigError naming the file, line
 * and reason; a domain defined twice is an error.
 */
export function loadRateLimitConfig(path: string, honeypots: ReadonlySet<string> = new Set()): RateLimitConfig {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.'))
        .sort()
        .map((n) => join(path, n))
    : [path];
  const config: RateLimitConfig = new Map();
  for (const file of files) {
    const { domain, root } = parseDomainFile(file, readFileSync(file, 'utf8'), honeypots);
    if (config.has(domain)) throw new RateLimitConfigError(file, 1, `domain "${domain}" is defined in another file too`);
    config.set(domain, root);
  }
  return config;
}
