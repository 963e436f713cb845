import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Builds dist/ before the suite when sources changed (`tsc -b`): the CLI tests run the built `heimdall` binary. */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}
