// Summarizes a V8 CPU profile (.cpuprofile, from `node --cpu-prof`): self time by area of the
// ingest path and the top functions by self time. Usage: node bench/profile-summary.mjs file [top]
// Positions in the agent's bundle (dist/bundle) are mapped back to their src/ files and lines through
// the bundle's source maps, so areas and functions name the source, not one minified line.
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';

const [, , file, top = '25'] = process.argv;
const profile = JSON.parse(readFileSync(file, 'utf8'));

/** Areas, first match wins: [label, test on "function url"]. */
const AREAS = [
  ['GC', (fn) => fn === '(garbage collector)'],
  ['idle', (fn) => fn === '(idle)'],
  ['native, no JS on the stack (event loop, nghttp2, sockets)', (fn) => fn === '(program)'],
  ['Buffer allocation and copies (batch join, rows copied out, gRPC message join)', (fn, url) => /^(concat|FastBuffer|createUnsafeBuffer|allocate|fromArrayLike|_copyActual|copy)$/.test(fn) && /buffer|^$/.test(url)],
  ['start-up (module loading)', (fn, url) => /node:internal\/modules|node:internal\/bootstrap/.test(url) || /^(ModuleWrap|compileSourceTextModule|wrapSafe)$/.test(fn)],
  ['gzip / zlib (insert compression)', (fn, url) => /zlib|deflate|gzip/i.test(fn + url)],
  ['@clickhouse/client + node:http', (fn, url) => /@clickhouse|node:_http|node:http|_http_/.test(url)],
  ['grpc-js + node:http2', (fn, url) => /@grpc\/grpc-js|node:internal\/http2|node:http2/.test(url)],
  ['OTLP wire decode + RowBinary rows (traces-wire, wire-text, rowbinary, values)', (fn, url) => /ingest\/otlp\/traces-wire|ingest\/otlp\/wire-text|storage\/rowbinary|ingest\/otlp\/values|ingest\/otlp\/traces\.js/.test(url)],
  ['element count / admission (otlp-ingest, decoded-size, element-count)', (fn, url) => /ingest\/otlp\//.test(url)],
  ['redaction / enrichment', (fn, url) => /ingest\/processors/.test(url)],
  ['pipeline, batcher, writer, limiter', (fn, url) => /ingest\/pipeline|ingest\/red-metrics/.test(url)],
  ['storage (server transport, tables)', (fn, url) => /dist\/storage\//.test(url)],
  ['agent server code (grpc wrapper, auth, metrics)', (fn, url) => /dist\//.test(url)],
  ['prom-client', (fn, url) => /prom-client/.test(url)],
  ['protobuf (@bufbuild)', (fn, url) => /@bufbuild/.test(url)],
  ['node streams / net / timers / promises', (fn, url) => /node:(internal\/)?(streams?|net|timers|process|async_hooks|events|buffer)/.test(url)],
  ['other node internals', (fn, url) => url.startsWith('node:')],
  ['native / builtins (no url)', (fn, url) => url === ''],
  ['other', () => true],
];

const maps = new Map();
/** The source map of a bundle file (null when it has none). */
function mapOf(url) {
  if (!maps.has(url)) {
    const file = url.startsWith('file:') ? `${fileURLToPath(url)}.map` : '';
    maps.set(url, file.includes('/dist/bundle/') && existsSync(file) ? new SourceMap(JSON.parse(readFileSync(file, 'utf8'))) : null);
  }
  return maps.get(url);
}

/** A call frame as [url, 0-based line]: a bundle position becomes its source's "dist/<path>.js" (what the areas test) and line. */
function origin({ url, lineNumber, columnNumber }) {
  const entry = mapOf(url)?.findEntry(lineNumber, columnNumber);
  if (!entry?.originalSource) return [url, lineNumber];
  return [entry.originalSource.replace(/^.*\/src\//, 'file:///dist/').replace(/\.ts$/, '.js'), entry.originalLine];
}

const dt = new Map();
const { nodes, samples, timeDeltas } = profile;
for (let i = 0; i < samples.length; i++) dt.set(samples[i], (dt.get(samples[i]) ?? 0) + (timeDeltas[i] ?? 0));
const byArea = new Map();
const byFn = new Map();
let total = 0;
let busy = 0;
for (const n of nodes) {
  const us = dt.get(n.id) ?? 0;
  if (!us) continue;
  const fn = n.callFrame.functionName;
  const [url, line] = origin(n.callFrame);
  const area = AREAS.find(([, t]) => t(fn, url))[0];
  byArea.set(area, (byArea.get(area) ?? 0) + us);
  total += us;
  if (area !== 'idle') busy += us;
  const key = `${fn || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${line + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + us);
}
const pct = (us) => `${((100 * us) / busy).toFixed(1)}%`;
const out = [`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (shares below are of busy time)`, '', '| area | self time | share |', '|---|---|---|'];
for (const [a, us] of [...byArea].sort((x, y) => y[1] - x[1])) if (a !== 'idle') out.push(`| ${a} | ${(us / 1e6).toFixed(2)} s | ${pct(us)} |`);
out.push('', '| function | self time | share |', '|---|---|---|');
for (const [k, us] of [...byFn].sort((x, y) => y[1] - x[1]).slice(0, Number(top))) out.push(`| ${k} | ${(us / 1e6).toFixed(2)} s | ${pct(us)} |`);
process.stdout.write(`${out.join('\n')}\n`);
