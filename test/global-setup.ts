import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Builds dist/ before the suite when sources changed (`tsc -b`), and every time the agent's bundle
 * (dist/bundle, which process-level and CLI tests run, as the image does), its native memory module
 * (dist/native) and the web console (dist/ui, which the browser tests load): a few seconds.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  execFileSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs')], { stdio: 'ignore' });
  execFileSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { stdio: 'inherit' });
  execFileSync(process.execPath, [join(root, 'scripts', 'build-ui.mjs')], { stdio: 'ignore' });
}
