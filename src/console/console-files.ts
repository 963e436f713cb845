import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

/** One built file of the console, held in memory. */
export interface ConsoleFile {
  body: Buffer;
  contentType: string;
  /** Content-hashed assets (under `assets/`) never change at their name: cached for a year, immutable. */
  immutable: boolean;
}

/** What a request path under `/ui/` resolves to. */
export type Resolved = { kind: 'file'; file: ConsoleFile } | { kind: 'index'; file: ConsoleFile } | { kind: 'not_found' } | { kind: 'refused'; reason: string };

/** The console's built files: a fixed set read once, looked up by name (the disk is never read per request). */
export interface ConsoleFiles {
  /** Whether the folder held a built console (`index.html`). */
  readonly built: boolean;
  /** Bytes held, over every file. */
  readonly bytes: number;
  /**
   * Resolves `rest`, the raw (still percent-encoded) path after `/ui/`: a built file; an unknown asset
   * (`assets/...`) is not found; any other path is a client route and gets `index.html`. A path with a
   * `.` or `..` segment, a backslash, a NUL or bad percent-encoding is refused.
   */
  resolve(rest: string): Resolved;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Limits of what the built folder may hold: the console is ~200 KB; anything far larger is not a console. */
const MAX_FILES = 200;
const MAX_BYTES = 20 * 1024 * 1024;

/** Lists regular files under `dir` (relative paths with `/`), refusing more than the limits allow. */
function listFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue; // symlinks are not followed: only files built into the folder
    found.push(relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'));
    if (found.length > MAX_FILES) throw new Error(`${dir} holds more than ${MAX_FILES} files: not a built console`);
  }
  return found;
}

/**
 * Reads the built console in `dir` (as `npm run build` writes it: `index.html` and `assets/`).
 * A missing folder gives a console that is not built; throws when the folder exceeds the limits.
 */
export function readConsoleFiles(dir: string): ConsoleFiles {
  const files = new Map<string, ConsoleFile>();
  let bytes = 0;
  let names: string[] = [];
  try {
    if (statSync(dir).isDirectory()) names = listFiles(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const name of names) {
    const body = readFileSync(join(dir, name));
    bytes += body.length;
    if (bytes > MAX_BYTES) throw new Error(`${dir} holds more than ${MAX_BYTES} bytes: not a built console`);
    files.set(name, { body, contentType: TYPES[extname(name)] ?? 'application/octet-stream', immutable: name.startsWith('assets/') });
  }
  const index = files.get('index.html');
  return {
    built: index !== undefined,
    bytes,
    resolve(rest) {
      let path: string;
      try {
        path = decodeURIComponent(rest);
      } catch {
        return { kind: 'refused', reason: 'bad percent-encoding' };
      }
      if (/[\\\0]/.test(path) || path.split('/').some((s) => s === '.' || s === '..')) return { kind: 'refused', reason: 'not a plain path' };
      const file = files.get(path);
      if (file && path !== 'index.html') return { kind: 'file', file };
      if (path.startsWith('assets/') || !index) return { kind: 'not_found' };
      return { kind: 'index', file: index };
    },
  };
}
