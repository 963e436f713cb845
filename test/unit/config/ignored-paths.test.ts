/** Every place the default config writes to, relative to the working directory, is ignored by git. */
import { spawnSync } from 'node:child_process';
import { isAbsolute, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');

/** The default config's file system paths (`path`, `*_dir`, `*_path`, `*_file` keys), by key. */
function defaultPaths(node: unknown, at: string[] = []): Array<[string, string]> {
  if (node && typeof node === 'object' && !Array.isArray(node)) return Object.entries(node).flatMap(([k, v]) => defaultPaths(v, [...at, k]));
  const key = at.at(-1) ?? '';
  return typeof node === 'string' && node !== '' && /^(path|.*_(dir|path|file))$/.test(key) ? [[at.join('.'), node]] : [];
}

describe('.gitignore', () => {
  it('ignores every relative default data path (embedded store, durable queue, exports)', () => {
    const relative = defaultPaths(validateConfig({})).filter(([, p]) => !isAbsolute(p));
    expect(relative.map(([key]) => key)).toEqual(expect.arrayContaining(['ingest.queue.path', 'jobs.export_dir', 'storage.embedded.path']));
    // git check-ignore exits 0 when the path is ignored, 1 when it is not.
    const tracked = relative.filter(([, path]) => spawnSync('git', ['check-ignore', '--no-index', '-q', join(path, 'some-file')], { cwd: ROOT }).status !== 0);
    expect(tracked).toEqual([]);
  });
});
