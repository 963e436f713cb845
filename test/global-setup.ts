import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Builds dist/ before the suite when sources changed (`tsc -b`): the CLI tests run the built `heimdall`
 * binary. The web console (dist/ui, esbuild: well under a second) is built every time: the browser tests load it.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  execFileSync(process.execPath, [join(root, 'scripts', 'build-ui.mjs')], { stdio: 'ignore' });
}
