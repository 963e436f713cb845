import { execFileSync } from 'node:child_process';
import { existsSync, globSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp.js';

/**
 * Whether an external binary the test needs is on PATH. In CI a missing binary fails the test
 * (.ci/run installs it); locally the test is skipped with the reason printed.
 */
export function haveBinary(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI) throw new Error(`${name} is required in CI but is not installed (.ci/run installs it)`);
    console.warn(`skipping: ${name} is not installed here (CI installs it)`);
    return false;
  }
}

/**
 * What `promtool check metrics` says of a /metrics text, ending with its exit status: `exit=0`
 * alone when the exposition is valid and passes the lints.
 */
export function promtoolCheck(text: string): string {
  return execFileSync('sh', ['-c', 'promtool check metrics 2>&1; echo "exit=$?"'], { input: text }).toString().trim();
}

/**
 * What `promtool check rules` says of a rules file (YAML text), ending with its exit status:
 * `exit=0` (after promtool's summary) when every expression parses.
 */
export function promtoolCheckRules(yaml: string): string {
  const dir = tempDir('heimdall-rules-');
  try {
    const file = join(dir.path, 'rules.yaml');
    writeFileSync(file, yaml);
    return execFileSync('sh', ['-c', 'promtool check rules "$1" 2>&1; echo "exit=$?"', 'sh', file]).toString().trim();
  } finally {
    dir.cleanup();
  }
}

/**
 * jemalloc's shared library (Debian's libjemalloc2), as the image links it. In CI a missing library
 * fails the test (.ci/run installs it); locally undefined, with the reason printed.
 */
export function jemallocLibrary(): string | undefined {
  const found = ['/usr/local/lib', '/usr/lib', ...globSync('/usr/lib/*-linux-gnu')].map((d) => join(d, 'libjemalloc.so.2')).find((p) => existsSync(p));
  if (found !== undefined) return found;
  if (process.env.CI) throw new Error('libjemalloc.so.2 is required in CI but is not installed (.ci/run installs libjemalloc2)');
  console.warn('skipping: libjemalloc.so.2 is not installed here (CI installs libjemalloc2)');
  return undefined;
}
