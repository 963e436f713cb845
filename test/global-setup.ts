import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Builds dist/ once before the suite: the CLI tests run the built `heimdall` binary. */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}
