// Builds the agent's one native module, dist/native/memory.node, from src/telemetry/memory-native.c
// (Node-API, headers from the node-api-headers package) with the C compiler in $CC or `cc`. Linux and
// glibc only: elsewhere, or without a compiler, it prints why and builds nothing, and the agent runs
// without it (memory-native.ts: no unmapping of the engine's code, no malloc_trim).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist', 'native', 'memory.node');

/** Compiles the module; returns null when built, else why not. */
export function buildNative() {
  rmSync(OUT, { force: true });
  if (process.platform !== 'linux') return `not on Linux (${process.platform})`;
  if (!process.report?.getReport().header.glibcVersionRuntime) return 'not on glibc';
  mkdirSync(join(ROOT, 'dist', 'native'), { recursive: true });
  const cc = process.env.CC || 'cc';
  const include = join(ROOT, 'node_modules', 'node-api-headers', 'include');
  try {
    execFileSync(cc, ['-O2', '-Wall', '-Werror', '-shared', '-fPIC', '-I', include, join(ROOT, 'src', 'telemetry', 'memory-native.c'), '-o', OUT], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return err.code === 'ENOENT' ? `no C compiler (${cc})` : `${cc} failed: ${String(err.stderr ?? err.message).trim()}`;
  }
}

if (import.meta.main) {
  const why = buildNative();
  if (why) console.warn(`dist/native/memory.node not built: ${why}; the agent runs without it (no unmapping of the engine's code, no malloc_trim)`);
}
