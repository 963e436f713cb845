import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** chdb's native builds by `<process.platform>-<process.arch>`, as chdb's own loader maps them. */
const CHDB_BUILDS: Readonly<Record<string, string>> = {
  'linux-x64': '@chdb/lib-linux-x64-gnu',
  'linux-arm64': '@chdb/lib-linux-arm64-gnu',
  'darwin-x64': '@chdb/lib-darwin-x64',
  'darwin-arm64': '@chdb/lib-darwin-arm64',
};

const USE_A_SERVER =
  'Or run with a ClickHouse server instead: set storage.mode: server and storage.clickhouse.url ' +
  '(for example "http://clickhouse:8123") in the config file.';

/**
 * What the embedded store lacks: chdb itself, its native build for the platform, a loadable chdb, or
 * glibc's malloc (another allocator is preloaded).
 */
export type ChdbAbsence = { kind: 'package' } | { kind: 'build'; version: string | undefined } | { kind: 'load'; detail: string } | { kind: 'allocator'; preload: string };

/**
 * Why the embedded store cannot open on `platform` (`<process.platform>-<process.arch>`) and what to
 * do, in one message: install what is missing, or use a ClickHouse server. Never throws.
 */
export function chdbUnavailableMessage(platform: string, absence: ChdbAbsence): string {
  const build = CHDB_BUILDS[platform];
  if (absence.kind === 'load') return `the embedded store cannot load chdb: ${absence.detail}. ${USE_A_SERVER}`;
  if (absence.kind === 'allocator') {
    return (
      `the embedded store cannot run with ${absence.preload} preloaded (LD_PRELOAD): chdb frees memory with glibc's malloc, ` +
      `so the process would abort ("free(): invalid pointer"). Unset LD_PRELOAD to use the embedded store (jemalloc is for server storage). ${USE_A_SERVER}`
    );
  }
  if (build === undefined) {
    return (
      `the embedded store needs chdb's native build, and chdb has none for ${platform} ` +
      `(it has builds for ${Object.keys(CHDB_BUILDS).join(', ')}; linux with glibc). ${USE_A_SERVER}`
    );
  }
  if (absence.kind === 'package') {
    return `the embedded store needs chdb (npm package "chdb", with its native build for ${platform}), and it is not installed. Install it with \`npm install chdb\`. ${USE_A_SERVER}`;
  }
  const spec = absence.version === undefined ? build : `${build}@${absence.version}`;
  return (
    `the embedded store needs chdb's native build for ${platform} (npm package "${build}"), and it is not installed ` +
    `(npm install adds only the builds package-lock.json lists: linux-x64's). Install it with \`npm install --no-save ${spec}\`. ${USE_A_SERVER}`
  );
}

/** Allocators that replace malloc when preloaded; chdb's engine cannot run beside them. */
const ALLOCATORS = /(?:^|\/)lib(?:jemalloc|tcmalloc[\w-]*|mimalloc)\.so[\d.]*$/;

/** The allocator library `LD_PRELOAD` (in `env`) puts in place of glibc's malloc, if any. Never throws. */
export function preloadedAllocator(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (env.LD_PRELOAD ?? '').split(/[\s:]+/).find((lib) => ALLOCATORS.test(lib));
}

/** `<process.platform>-<process.arch>` of this process, as chdb names its builds. */
export function platformKey(): string {
  return `${process.platform}-${process.arch}`;
}

/**
 * What a failed `import('chdb')` lacked: the package (it does not resolve), or its native build for
 * this platform (chdb's ChdbPlatformUnsupportedError, with the version chdb expects), or else a
 * chdb that does not load (with the error's message). Never throws.
 */
export function chdbAbsence(err: unknown): ChdbAbsence {
  let manifest: string;
  try {
    manifest = join(dirname(fileURLToPath(import.meta.resolve('chdb'))), 'package.json');
  } catch {
    return { kind: 'package' };
  }
  if ((err as { name?: unknown } | undefined)?.name !== 'ChdbPlatformUnsupportedError') return { kind: 'load', detail: err instanceof Error ? err.message : String(err) };
  try {
    const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { optionalDependencies?: Record<string, string> };
    return { kind: 'build', version: pkg.optionalDependencies?.[CHDB_BUILDS[platformKey()] ?? ''] };
  } catch {
    return { kind: 'build', version: undefined };
  }
}
