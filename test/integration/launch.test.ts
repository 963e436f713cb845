/** Running Heimdall from a checkout as the README says: `npx heimdall`, `npm exec heimdall`, `npm start`. */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';

const ROOT = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };
// A cache of our own: npx caches what it installed per directory, and a stale entry would hide a fault.
const cache = tempDir('heimdall-npm-cache-');
afterAll(() => cache.cleanup());

/** Runs npm's `npx`/`npm` in `cwd` offline (the checkout has everything it needs). */
function npm(command: 'npx' | 'npm', args: string[], cwd = ROOT) {
  return spawnSync(command, args, {
    cwd,
    env: { ...process.env, npm_config_cache: cache.path, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('the heimdall command in a checkout', () => {
  it('runs as `npx heimdall` and `npm exec heimdall` on the Node the repository pins', () => {
    const npx = npm('npx', ['heimdall', 'version']);
    expect(npx.stderr).toBe('');
    expect(npx.stdout).toBe(`heimdall ${pkg.version} (build dev, node ${process.version})\n`);
    expect(npx.status).toBe(0);
    const exec = npm('npm', ['exec', '--', 'heimdall', '--version']);
    expect(exec.stdout).toBe(`${pkg.version} (dev)\n`);
    expect(exec.status).toBe(0);
  }, 120_000);

  it('says what to run when the checkout is not built and cannot build', () => {
    // A checkout before `npm install`: package.json and the launcher, no dist/, no compiler.
    const dir = tempDir();
    mkdirSync(join(dir.path, 'bin'));
    copyFileSync(join(ROOT, 'package.json'), join(dir.path, 'package.json'));
    copyFileSync(join(ROOT, 'bin', 'heimdall.js'), join(dir.path, 'bin', 'heimdall.js'));
    const r = npm('npx', ['heimdall', 'version'], dir.path);
    expect(r.stderr).toBe(`heimdall: ${join(dir.path, 'dist', 'bundle', 'main.js')} is missing. Run \`npm install && npm run build\` in ${dir.path}.\n`);
    expect(r.status).toBe(1);
    dir.cleanup();
  }, 120_000);
});

describe('npm start', () => {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const config = join(ROOT, 'tsconfig.build.json');
  const build = (...flags: string[]) => spawnSync(process.execPath, [tsc, '-b', config, ...flags], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

  it('builds only when sources changed', () => {
    expect(pkg.scripts.start).toBe('npm run build && node dist/bundle/main.js run');
    // The agent's and the console's bundles (esbuild, a few seconds) and the native memory module (cc, under a second) are written each time; the TypeScript build only when sources changed.
    expect(pkg.scripts.build).toBe('tsc -b tsconfig.build.json && node scripts/build-agent.mjs && node scripts/build-native.mjs && node scripts/build-ui.mjs');
    // The suite's global setup built the tree: the build step of a start writes nothing.
    const before = statSync(join(ROOT, 'dist', 'main.js')).mtimeMs;
    expect(build().status).toBe(0);
    expect(statSync(join(ROOT, 'dist', 'main.js')).mtimeMs).toBe(before);
    // A source newer than the last build is seen (a dry run: it says so and builds nothing).
    const source = join(ROOT, 'src', 'version.ts');
    const { atime, mtime } = statSync(source);
    try {
      utimesSync(source, atime, new Date());
      const dry = build('--dry', '--verbose');
      expect(dry.stdout).toContain('A non-dry build would build project');
    } finally {
      utimesSync(source, atime, mtime);
    }
    expect(build('--dry', '--verbose').stdout).not.toContain('A non-dry build would');
  }, 120_000);
});
