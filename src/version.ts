import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** The agent's version, from package.json. */
export const VERSION: string = pkg.version;

/** The build identifier (git commit) baked in by the image build, or `dev`. */
export const BUILD: string = process.env.HEIMDALL_BUILD ?? 'dev';
