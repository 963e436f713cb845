// Preloaded with `node --import` into an agent process by a test: records every module the process
// loads and, at exit, writes the packages they came from (one a line: `chdb`, `@grpc/grpc-js`, ...)
// to the file named by $HEIMDALL_MODULE_LOG. A file of the bundle (dist/bundle) counts as the packages
// its sources came from, read from the bundle's metafile (dist/bundle/meta.json).
import { readFileSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = /node_modules\/((?:@[^/]+\/)?[^/]+)/;
const packages = new Set();
let meta;

/** The packages bundled into the bundle file at `path`. */
function bundledPackages(path) {
  meta ??= JSON.parse(readFileSync(join(dirname(path), 'meta.json'), 'utf8'));
  const output = Object.entries(meta.outputs).find(([file]) => file.endsWith(`/bundle/${basename(path)}`));
  if (!output) throw new Error(`${path} is not in the bundle's metafile`);
  return Object.keys(output[1].inputs).flatMap((input) => PACKAGE.exec(input)?.[1] ?? []);
}

registerHooks({
  load(url, context, nextLoad) {
    const m = PACKAGE.exec(url);
    if (m) packages.add(m[1]);
    else if (url.startsWith('file:') && /\/dist\/bundle\/[^/]+\.js$/.test(url)) for (const p of bundledPackages(fileURLToPath(url))) packages.add(p);
    return nextLoad(url, context);
  },
});
process.on('exit', () => writeFileSync(process.env.HEIMDALL_MODULE_LOG, [...packages].sort().join('\n')));
