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

/** Every src module the worker's entry loads at run time (value imports; `import type` is erased). */
function workerModules(): Set<string> {
  const seen = new Set<string>();
  const stack = [join(SRC, 'ratelimit/worker/entry.ts')];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'(\.[^']+)'/gms)) {
      stack.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
    }
    for (const m of text.matchAll(/import\('(\.[^']+)'\)/g)) stack.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  return seen;
}

describe('the rate-limit worker', () => {
  it('loads no generated protobuf file', () => {
    const modules = [...workerModules()].map((f) => f.slice(SRC.length + 1));
    expect(modules).toContain('ratelimit/worker/host.ts');
    expect(modules).toContain('ratelimit/security-policy.ts');
    expect(modules.filter((f) => f.startsWith('gen/'))).toEqual([]);
  });

  it("keeps Envoy's RLS names and codes and heimdall.v1.SecurityMode as the generated files have them", () => {
    expect([RLS.service, RLS.method, RLS.request]).toEqual([RateLimitService.typeName, RateLimitService.method.shouldRateLimit.name, RateLimitRequestSchema.typeName]);
    expect(RLS.code).toEqual({ UNKNOWN: RateLimitResponse_Code.UNKNOWN, OK: RateLimitResponse_Code.OK, OVER_LIMIT: RateLimitResponse_Code.OVER_LIMIT });
    expect(MODE).toEqual({ UNSPECIFIED: SecurityMode.UNSPECIFIED, NORMAL: SecurityMode.NORMAL, ELEVATED: SecurityMode.ELEVATED, LOCKDOWN: SecurityMode.LOCKDOWN });
  });
});
