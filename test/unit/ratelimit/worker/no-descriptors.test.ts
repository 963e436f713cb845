/**
 * The rate-limit worker builds no protobuf descriptors at start: nothing it loads imports a generated
 * file (their descriptors cost the worker ~20 ms of CPU at every start), and the names and values it
 * keeps in their place are the generated ones.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitService } from '../../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { SecurityMode } from '../../../../src/gen/heimdall/v1/security_pb.js';
import { MODE } from '../../../../src/ratelimit/security-policy.js';
import { RLS } from '../../../../src/ratelimit/wire.js';

const SRC = resolve(import.meta.dirname, '../../../../src');

/** A module's run-time imports: static (`import type` is erased), side-effect, re-exports and dynamic. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b(?!\s+type\b)[^;'"]*?(['"])([^'"]+)\1/gm)) found.push(m[2]!);
  for (const m of text.matchAll(/\bimport\(\s*(['"])([^'"]+)\1/g)) found.push(m[2]!);
  return found;
}

/** Every src module the worker's entry loads at run time, and the packages they import. */
function workerImports(): { modules: Set<string>; packages: Set<string> } {
  const modules = new Set<string>();
  const packages = new Set<string>();
  const stack = [join(SRC, 'ratelimit/worker/entry.ts')];
  while (stack.length) {
    const file = stack.pop()!;
    if (modules.has(file)) continue;
    modules.add(file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) stack.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec);
    }
  }
  return { modules, packages };
}

describe('the rate-limit worker', () => {
  it('loads no generated protobuf file, and of protobuf-es only its wire encoding', () => {
    const { modules, packages } = workerImports();
    const files = [...modules].map((f) => f.slice(SRC.length + 1));
    expect(files).toContain('ratelimit/worker/host.ts');
    expect(files).toContain('ratelimit/security-policy.ts');
    expect(files).toContain('server/errors.ts');
    expect(files.filter((f) => f.startsWith('gen/'))).toEqual([]);
    // The others (wkt, codegenv2) build descriptors when imported.
    expect([...packages].filter((p) => p.startsWith('@bufbuild/'))).toEqual(['@bufbuild/protobuf/wire']);
  });

  it("keeps Envoy's RLS names and codes and heimdall.v1.SecurityMode as the generated files have them", () => {
    expect([RLS.service, RLS.method, RLS.request]).toEqual([RateLimitService.typeName, RateLimitService.method.shouldRateLimit.name, RateLimitRequestSchema.typeName]);
    expect(RLS.code).toEqual({ OK: RateLimitResponse_Code.OK, OVER_LIMIT: RateLimitResponse_Code.OVER_LIMIT });
    expect(MODE).toEqual({ UNSPECIFIED: SecurityMode.UNSPECIFIED, NORMAL: SecurityMode.NORMAL, ELEVATED: SecurityMode.ELEVATED, LOCKDOWN: SecurityMode.LOCKDOWN });
  });
});
