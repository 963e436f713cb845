import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The agent package's directory: the nearest one above this module holding a package.json. The
 * module runs from src/ (tests), dist/ (tsc's output) or dist/bundle/ (the bundle), at different depths.
 */
function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/** The agent package's directory (package.json, dist/ui). */
export const PACKAGE_ROOT: string = findPackageRoot(import.meta.dirname);
