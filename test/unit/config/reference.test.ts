/** The README's configuration reference is checked against the schema: same keys, valid values. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';

/** Every leaf key path of a zod schema, descending through optional/default/prefault wrappers. */
function schemaPaths(schema: z.core.$ZodType, prefix = ''): string[] {
  const def = schema._zod.def as { type: string; innerType?: z.core.$ZodType; shape?: Record<string, z.core.$ZodType> };
  if (def.type === 'optional' || def.type === 'default' || def.type === 'prefault') return schemaPaths(def.innerType as z.core.$ZodType, prefix);
  if (def.type === 'object' && def.shape) return Object.entries(def.shape).flatMap(([k, v]) => schemaPaths(v, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

/** Every leaf key path of a parsed YAML tree. */
function treePaths(node: unknown, prefix = ''): string[] {
  if (prefix === 'ingest.enrichment.from_env') return [prefix];
  if (node !== null && typeof node === 'object' && !Array.isArray(node)) return Object.entries(node).flatMap(([k, v]) => treePaths(v, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

describe('README configuration reference', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration reference'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const tree = parse(block) as unknown;

  it('names exactly the keys the schema has', () => {
    expect(treePaths(tree).sort()).toEqual(schemaPaths(configSchema).sort());
  });

  it('is a valid configuration whose defaults match the schema defaults', () => {
    const documented = validateConfig(tree);
    const defaults = validateConfig({});
    expect(documented.server.grpc.address).toBe(defaults.server.grpc.address);
    expect(documented.server.grpc.max_recv_msg_size).toBe(defaults.server.grpc.max_recv_msg_size);
    expect(documented.server.otlp_http.max_body_size).toBe(defaults.server.otlp_http.max_body_size);
    expect(documented.storage.retention).toEqual(defaults.storage.retention);
    expect(documented.storage.retry).toEqual(defaults.storage.retry);
    expect(documented.shutdown).toEqual(defaults.shutdown);
    expect(documented.telemetry).toEqual(defaults.telemetry);
    expect(documented.log).toEqual(defaults.log);
    expect(documented.storage.clickhouse.request_timeout).toBe(defaults.storage.clickhouse.request_timeout);
    expect(documented.storage.clickhouse.max_open_connections).toBe(defaults.storage.clickhouse.max_open_connections);
  });
});
