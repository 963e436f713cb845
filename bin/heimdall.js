#!/usr/bin/env node
// The `heimdall` command (package.json "bin"), as `npx heimdall` and `npm exec heimdall` run it.
// Runs the built agent, dist/bundle/main.js. In a checkout without it, it bundles first when esbuild
// is installed (a dev dependency), and otherwise says what to run; the web console (dist/ui) likewise with esbuild. npm puts node_modules/.bin first
// on PATH for `npx` and `npm exec`, so `node` here is the repository's own (the `node` dev dependency).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist', 'bundle', 'main.js');

/** Bundles the agent (scripts/build-agent.mjs), or exits 1 saying what to run. */
function buildOrExplain() {
  const script = join(ROOT, 'scripts', 'build-agent.mjs');
  if (!existsSync(script) || !existsSync(join(ROOT, 'node_modules', 'esbuild'))) {
    process.stderr.write(`heimdall: ${MAIN} is missing. Run \`npm install && npm run build\` in ${ROOT}.\n`);
    process.exit(1);
  }
  process.stderr.write('heimdall: dist/bundle is missing; building it once (a few seconds)...\n');
  const built = spawnSync(process.execPath, [script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0 || !existsSync(MAIN)) {
    process.stderr.write(`heimdall: the build failed; fix the errors above and run \`npm run build\` in ${ROOT}.\n`);
    process.exit(1);
  }
}

/** Builds the web console (dist/ui) when a checkout has its sources but no build; the agent runs without it (/ui/ says what to run). */
function buildConsole() {
  const script = join(ROOT, 'scripts', 'build-ui.mjs');
  if (existsSync(join(ROOT, 'dist', 'ui', 'index.html')) || !existsSync(script) || !existsSync(join(ROOT, 'node_modules', 'esbuild'))) return;
  const built = spawnSync(process.execPath, [script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) process.stderr.write('heimdall: the web console did not build; run `npm run build` to see why.\n');
}

if (!existsSync(MAIN)) buildOrExplain();
buildConsole();
// Node's on-disk compile cache (in the OS temporary directory, or $NODE_COMPILE_CACHE): later starts
// skip compiling the agent's bundle again.
enableCompileCache();
await import(pathToFileURL(MAIN).href);
