// Bundles the agent (src/main.ts) and its rate-limit worker thread (src/ratelimit/worker/entry.ts)
// into dist/bundle/ with esbuild: ES modules, split into chunks both entries share, every package
// inside except those loaded from their own files (chdb's native engine, ioredis). Start-up then reads
// ~30 files instead of ~650 modules (issue 16: cold start and idle memory; figures in the README).
// Writes dist/bundle/meta.json (esbuild's metafile: which sources each chunk holds) and source maps
// without sources (`node --enable-source-maps dist/bundle/main.js` maps stack traces to src/).
// Whitespace and syntax minified: each isolate (main and worker) holds the source text of the chunks
// it loads. Identifiers are not renamed, so no names need keeping: esbuild's keepNames wraps every
// named closure in a call that redefines its name as the closure is made, which cost the rate-limit
// path 1.5 KB and ~10 µs a call.
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist', 'bundle');

/** Packages loaded from node_modules at run time rather than bundled: native code, or required by name. */
const EXTERNAL = ['chdb', '@chdb/*', 'ioredis'];

/** Node's built-in modules, with and without the `node:` prefix. */
const BUILTIN = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Built-in modules imported from ES modules are taken with require() instead. Importing a built-in
 * as an ES module reads every export to build its facade, which runs the lazy getters: `node:http`'s
 * WebSocket loads undici (~40 ms of the main thread's start on one core), `node:fs`'s ReadStream its
 * streams. require() hands over the module object as it is; esbuild's interop reads a name when used.
 */
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z0-9_/]+$/ }, (args) => (args.kind === 'import-statement' && BUILTIN.has(args.path) ? { path: args.path, namespace: 'builtin' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

/** Builds dist/bundle; returns the output files' total size in bytes (maps apart). */
export async function buildAgent() {
  rmSync(OUT, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'src/main.ts', entry: 'src/ratelimit/worker/entry.ts' },
    tsconfig: 'tsconfig.json',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    outdir: OUT,
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    external: EXTERNAL,
    plugins: [builtinsByRequire],
    // Bundled CommonJS packages call require() and read __dirname/__filename, which ES modules lack.
    banner: {
      js: "import { createRequire as __heimdallRequire } from 'node:module'; import { dirname as __heimdallDirname } from 'node:path'; const require = __heimdallRequire(import.meta.url); const __filename = import.meta.filename; const __dirname = __heimdallDirname(__filename);",
    },
    sourcemap: 'linked',
    sourcesContent: false,
    legalComments: 'none',
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'warning',
  });
  writeFileSync(join(OUT, 'meta.json'), JSON.stringify(result.metafile));
  for (const file of Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'))) wideCharacter(join(ROOT, file));
  return Object.entries(result.metafile.outputs)
    .filter(([file]) => file.endsWith('.js'))
    .reduce((sum, [, o]) => sum + o.bytes, 0);
}

/**
 * Throws when a bundle file holds a character past Latin-1. V8 keeps each module's source for its
 * lifetime, one byte a character, or two for the whole file when one character needs it (main.js:
 * 1.1 MB more of each process). esbuild escapes strings, not every regular expression: write `\u2026`.
 */
function wideCharacter(file) {
  const text = readFileSync(file, 'utf8');
  const at = text.search(/[\u0100-\u{10ffff}]/u);
  if (at !== -1) throw new Error(`${file}: character ${JSON.stringify(text[at])} past Latin-1 at offset ${at} (near ${JSON.stringify(text.slice(Math.max(0, at - 40), at + 10))}): escape it in the source`);
}

if (process.argv[1] === import.meta.filename) {
  const bytes = await buildAgent();
  process.stdout.write(`dist/bundle: ${(bytes / 1048576).toFixed(1)} MiB of JavaScript\n`);
}
