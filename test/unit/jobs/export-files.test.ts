/** Where exports go and what they count: tenant folders, the directory budget (tenant folders included), stale part files, windows. */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { directoryBytes, exportWindow, openPartFile, removeStaleParts, tenantFolder } from '../../../src/jobs/kinds/export.js';
import { KIND_PARAMS } from '../../../src/jobs/kinds/params.js';
import { silentLogger, tempDir } from '../../support/temp.js';

const RUN = '01a23484-80f1-785c-9605-5e6a9c27f6a5';

describe('export files', () => {
  const dirs: Array<{ cleanup: () => void }> = [];
  const dir = () => {
    const d = tempDir();
    dirs.push(d);
    return d.path;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) d.cleanup();
  });

  it('counts the files of tenant folders in the export directory budget', () => {
    const root = dir();
    writeFileSync(join(root, 'all.jsonl'), 'x'.repeat(100));
    mkdirSync(join(root, 'tenant=a'));
    writeFileSync(join(root, 'tenant=a', 'report.jsonl'), 'x'.repeat(1000));
    writeFileSync(join(root, 'tenant=a', `big.jsonl.${RUN}.part`), 'x'.repeat(10));
    expect(directoryBytes(root)).toBe(1110);
    expect(directoryBytes(join(root, 'tenant=a'))).toBe(1010);
    expect(directoryBytes(join(root, 'absent'))).toBe(0);
  });

  it('names a folder per tenant that no export file name can take, whatever the tenant is', () => {
    expect(tenantFolder('acme-1')).toBe('tenant=acme-1');
    for (const odd of ['../etc', '.', 'a/b', 'x'.repeat(200), '']) {
      expect(tenantFolder(odd)).toMatch(/^tenant=_[0-9a-f]{32}$/);
      expect(KIND_PARAMS.export.safeParse({ source: 'events', file: tenantFolder(odd) }).success).toBe(false);
    }
    expect(tenantFolder('../etc')).not.toBe(tenantFolder('a/b'));
  });

  it('removes the part files that runs left, in tenant folders too', () => {
    const root = dir();
    mkdirSync(join(root, 'tenant=a'));
    const stale = [join(root, `x.jsonl.${RUN}.part`), join(root, 'tenant=a', `y.jsonl.${RUN}.part`)];
    for (const f of stale) writeFileSync(f, 'x');
    writeFileSync(join(root, 'tenant=a', 'done.jsonl'), 'x');
    removeStaleParts(root, () => false, silentLogger());
    expect(stale.map((f) => existsSync(f))).toEqual([false, false]);
    expect(existsSync(join(root, 'tenant=a', 'done.jsonl'))).toBe(true);
  });

  it('reads at most query.max_window, naming the parameter that asks for more', () => {
    const now = Date.parse('2026-12-01T00:00:00Z');
    const parse = (p: Record<string, unknown>) => KIND_PARAMS.export.parse({ source: 'events', ...p });
    expect(exportWindow(parse({ since: '1h' }), now, 86_400_000)).toEqual({ start: now - 3_600_000, end: now });
    expect(exportWindow(parse({ since: '2d' }), now, 86_400_000)).toEqual({ refused: 'since: the window is at most 1d (query.max_window), got 2.0d; export several narrower windows' });
    expect(exportWindow(parse({ start: '2026-11-01T00:00:00Z', end: '2026-11-01T12:00:00Z' }), now, 86_400_000)).toEqual({ start: Date.parse('2026-11-01T00:00:00Z'), end: Date.parse('2026-11-01T12:00:00Z') });
    expect(exportWindow(parse({ start: '1970-01-01T00:00:00Z' }), now, 86_400_000)).toMatchObject({ refused: expect.stringMatching(/^start: the window is at most 1d/) as unknown });
    // A scheduled export in the config that would always ask for more is a configuration error.
    const scheduled = (since: string) => ({ query: { max_window: '2d', summary_window: '1d' }, jobs: { scheduled: [{ name: 'nightly', schedule: '0 3 * * *', kind: 'export', params: { source: 'events', since } }] } });
    expect(() => validateConfig(scheduled('7d'))).toThrow(/jobs\.scheduled\[0\]\.params\.since: must not exceed query\.max_window \(172800000 ms\)/);
    expect(validateConfig(scheduled('1d')).jobs.scheduled).toHaveLength(1);
  });

  it('leaves no part file behind a run refused before the file was even opened', async () => {
    const root = dir();
    const deps = { exportDir: root, maxBytes: 4096, tenantMaxBytes: 4096 };
    const refuse = (limit: string, message: string): never => {
      throw new Error(`${limit}: ${message}`);
    };
    for (let i = 0; i < 20; i++) {
      // The stream opens its file on a later turn of the event loop; this chunk is refused before that.
      const part = openPartFile(deps, { file: join(root, 'big.jsonl'), dir: root, runId: RUN, tenant: undefined }, refuse);
      await expect(part.write('x'.repeat(5000))).rejects.toThrow(/^export_max_size: /);
      await part.abort();
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(root)).toEqual([]);
  });
});
