// Builds the web console (ui/) into dist/ui/: esbuild bundles ui/main.tsx (Preact, uPlot, the API client)
// and its CSS into content-hashed, minified files under dist/ui/assets/, and writes dist/ui/index.html
// naming them. Run by `npm run build`; prints each file's size (raw and gzip). No source maps unless
// `--sourcemap` is given: the agent holds the console in memory (~100 KB; the map alone is ~500 KB).
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist', 'ui');

/** Builds the console; returns the sizes of its files (source maps apart). */
export async function buildUi({ quiet = false, sourcemap = false } = {}) {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'ui/main.tsx' },
    tsconfig: 'ui/tsconfig.json',
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    outdir: join(OUT, 'assets'),
    entryNames: '[name]-[hash]',
    sourcemap: sourcemap ? 'linked' : false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => join(ROOT, p));
  const js = outputs.find((p) => p.endsWith('.js'));
  const css = outputs.find((p) => p.endsWith('.css'));
  if (!js || !css) throw new Error('esbuild wrote no script or stylesheet');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Heimdall</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/assets/${basename(css)}">
<script type="module" src="/ui/assets/${basename(js)}"></script>
</head>
<body><div id="app"></div></body>
</html>
`;
  writeFileSync(join(OUT, 'index.html'), html);
  const sizes = [js, css, join(OUT, 'index.html')].map((p) => {
    const body = readFileSync(p);
    return { file: p.slice(OUT.length + 1), bytes: body.length, gzip: gzipSync(body, { level: 9 }).length };
  });
  if (!quiet) for (const s of sizes) process.stdout.write(`dist/ui/${s.file}: ${s.bytes} bytes (${s.gzip} gzip)\n`);
  return sizes;
}

if (process.argv[1] === import.meta.filename) await buildUi({ sourcemap: process.argv.includes('--sourcemap') });
