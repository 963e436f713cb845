import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

/** The agent's version, from package.json. */
export const VERSION: string = pkg.version;

/** The build identifier (git commit) baked in by the image build, or `dev`. */
export const BUILD: string = process.env.HEIMDALL_BUILD ?? 'dev';
