#!/usr/bin/env node
// The `heimdall` command (package.json "bin"), as `npx heimdall` and `npm exec heimdall` run it.
// Runs the built dist/main.js. In a checkout without dist/ it builds first (`npm run build`) when the
// TypeScript compiler is installed, and otherwise says what to run. npm puts node_modules/.bin first
// on PATH for `npx` and `npm exec`, so `node` here is the repository's own (the `node` dev dependency).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist', 'main.js');

/** Builds dist/ with the repository's compiler, or exits 1 saying what to run. */
function buildOrExplain() {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc) || !existsSync(join(ROOT, 'tsconfig.build.json'))) {
    process.stderr.write(`heimdall: ${MAIN} is missing. Run \`npm install && npm run build\` in ${ROOT}.\n`);
    process.exit(1);
  }
  process.stderr.write('heimdall: dist/ is missing; building it once with `npm run build` (about 30 s)...\n');
  const built = spawnSync(process.execPath, [tsc, '-b', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (built.status !== 0 || !existsSync(MAIN)) {
    process.stderr.write(`heimdall: the build failed; fix the errors above and run \`npm run build\` in ${ROOT}.\n`);
    process.exit(1);
  }
}

if (!existsSync(MAIN)) buildOrExplain();
await import(pathToFileURL(MAIN).href);
