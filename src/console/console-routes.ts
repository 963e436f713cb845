import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import type { HttpServer } from '../server/http.js';
import { sendJson } from '../server/http-router.js';
import type { Logger } from '../telemetry/logger.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { readConsoleFiles, type ConsoleFile } from './console-files.js';

/** Where `npm run build` writes the console: `dist/ui` of the package. */
export const CONSOLE_DIR = join(PACKAGE_ROOT, 'dist', 'ui');

/**
 * The console's Content-Security-Policy: its own scripts, styles and API only; no inline script or
 * style, no frames, no forms posting elsewhere, nothing from another origin.
 */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Headers on every console response. */
const SECURITY_HEADERS = { 'content-security-policy': CONSOLE_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

/** Options for addConsoleRoutes. */
export interface ConsoleRoutesOptions {
  /** The built console folder (default CONSOLE_DIR). */
  dir?: string;
  /** The agent's logger; says at start when the console is not built. */
  logger: Logger;
}

function sendFile(res: ServerResponse, file: ConsoleFile, cache: string): void {
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.contentType, 'content-length': file.body.length, 'cache-control': cache });
  res.end(file.body);
}

/**
 * Serves the web console on the admin listener, without a token (the API calls it makes need one):
 * `/` and `/ui` redirect to `/ui/`; under `/ui/`, the built assets (cached for a year, immutable: their
 * names carry a content hash) and `index.html` for every other path (client routes; never cached), all
 * with a strict CSP, `nosniff` and no referrer. Only the files read from `dir` at startup are served;
 * a path with `.`/`..` segments is refused (400). Without a build, `/ui/` answers 503 saying what to run.
 */
export function addConsoleRoutes(server: Pick<HttpServer, 'route'>, options: ConsoleRoutesOptions): void {
  const dir = options.dir ?? CONSOLE_DIR;
  const files = readConsoleFiles(dir);
  const logger = options.logger.child({ component: 'console' });
  if (files.built) logger.debug({ dir, bytes: files.bytes }, 'web console ready at /ui/');
  else logger.warn({ dir }, 'the web console is not built (run `npm run build`): /ui/ answers 503');
  const redirect = (_req: unknown, res: ServerResponse): void => {
    res.writeHead(308, { location: '/ui/', 'content-length': 0 });
    res.end();
  };
  server.route('GET', '/', redirect);
  server.route('GET', '/ui', redirect);
  server.route('GET', '/ui/*', (req, res) => {
    if (!files.built) return sendJson(res, 503, { error: 'the web console is not built: run `npm run build`' });
    const rest = (req.url ?? '/ui/').split('?')[0]?.slice('/ui/'.length) ?? '';
    const found = files.resolve(rest);
    switch (found.kind) {
      case 'refused':
        return sendJson(res, 400, { error: `refused path: ${found.reason}` });
      case 'not_found':
        return sendJson(res, 404, { error: 'no such console file' });
      case 'index':
        return sendFile(res, found.file, 'no-cache');
      case 'file':
        return sendFile(res, found.file, found.file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    }
  });
}
