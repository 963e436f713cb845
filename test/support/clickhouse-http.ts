/**
 * A test-only server that speaks ClickHouse's HTTP interface over the embedded engine (chdb), so the
 * server transport (@clickhouse/client) is tested against real SQL without a ClickHouse server.
 * It implements what the client uses: /ping, queries in the body or in `query`, `param_*` query
 * parameters, inserts with data in the body (gzip, deflate, zstd or none; JSONEachRow or RowBinary), per-insert settings, and ClickHouse's
 * error format. It can be switched "down" (connections refused) to test outages.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync, inflateSync, zstdDecompressSync } from 'node:zlib';
import { drainPending, Session } from 'chdb';

export interface ClickHouseHttp {
  readonly url: string;
  readonly port: number;
  /** Requests answered so far, with their SQL (for assertions). */
  readonly log: Array<{ sql: string; params: Record<string, string>; encoding?: string | undefined }>;
  /** Stops listening and drops every connection (an outage); `up` listens on the same port again. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

const INSERT = /^\s*INSERT\s+INTO\s+([`"\w.]+)\s*(?:\(([^)]*)\))?\s*FORMAT\s+(\w+)\s*$/is;
const INSERT_SETTINGS = /^(insert_|async_insert|wait_for_async_insert|input_format_|date_time_input_format|exclude_materialize_skip_indexes_on_insert|throw_on_max_partitions_per_insert_block)/;
/** Settings a server applies to a query's execution (limits), given as URL parameters. */
const QUERY_SETTINGS = /^(max_execution_time|timeout_overflow_mode|max_rows_to_read|max_bytes_to_read|read_overflow_mode|output_format_\w+)$/;

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', r: '\r', n: '\n', t: '\t', '0': '\0', a: '\x07', v: '\v' };

/** Decodes ClickHouse's Escaped text format, which the HTTP interface uses for String `param_` values. */
function unescape(value: string): string {
  return value.replace(/\\(.)/gs, (_m, c: string) => ESCAPES[c] ?? c);
}

/** The declared type of every `{name:Type}` placeholder in a query. */
function placeholderTypes(sql: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of sql.matchAll(/\{\s*(\w+)\s*:\s*([^}]+?)\s*\}/g)) types.set(m[1] ?? '', m[2] ?? '');
  return types;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const enc = req.headers['content-encoding'];
  if (enc === 'gzip') return gunzipSync(raw);
  if (enc === 'deflate') return inflateSync(raw);
  if (enc === 'zstd') return zstdDecompressSync(raw);
  return raw;
}

function fail(res: ServerResponse, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  const code = /Code: (\d+)\./.exec(message)?.[1] ?? '1000';
  const text = message.startsWith('Code:') ? message : `Code: ${code}. DB::Exception: ${message}`;
  res.writeHead(code === '62' || code === '457' ? 400 : 500, { 'content-type': 'text/plain; charset=UTF-8', 'x-clickhouse-exception-code': code });
  res.end(`${text}\n`);
}

/** Starts the endpoint on 127.0.0.1 (random port) over a chdb data directory. */
/**
 * Listens on `port`, or first on a free port below the kernel's ephemeral range (32768 and up on
 * Linux). While the endpoint is down its port is free, and a port from the ephemeral range could be
 * taken meanwhile as the local port of some outgoing connection, so that `up()` failed with
 * EADDRINUSE; below that range only a listener can take it.
 */
async function listenOutsideEphemeral(s: Server, port: number): Promise<number> {
  const attempt = (p: number) =>
    new Promise<boolean>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' && port === 0 ? resolve(false) : reject(err));
      s.once('error', onError);
      s.listen(p, '127.0.0.1', () => {
        s.off('error', onError);
        resolve(true);
      });
    });
  if (port !== 0) {
    await attempt(port);
    return port;
  }
  for (;;) {
    const p = 20_000 + Math.floor(Math.random() * 12_000);
    if (await attempt(p)) return (s.address() as AddressInfo).port;
  }
}

export async function startClickHouseHttp(dataPath: string, options: { user?: string; password?: string } = {}): Promise<ClickHouseHttp> {
  // Match the server's defaults, which chdb does not share.
  const session = new Session(dataPath, { connectionArgs: ['--output_format_json_quote_64bit_integers=1'] });
  const log: ClickHouseHttp['log'] = [];
  const sockets = new Set<Socket>();
  const spool = mkdtempSync(join(tmpdir(), 'ch-http-'));
  let spooled = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/ping' || (url.pathname === '/' && req.method === 'GET' && !url.searchParams.has('query'))) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('Ok.\n');
      return;
    }
    if (options.user !== undefined) {
      const auth = req.headers.authorization;
      const user = req.headers['x-clickhouse-user'] ?? (auth ? Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':')[0] : undefined);
      const key = req.headers['x-clickhouse-key'] ?? (auth ? Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':').slice(1).join(':') : undefined);
      if (user !== options.user || key !== (options.password ?? '')) {
        fail(res, new Error('Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)'));
        return;
      }
    }
    const params: Record<string, string> = {};
    const settings: Record<string, string> = {};
    const querySettings: string[] = [];
    for (const [k, v] of url.searchParams) {
      if (k.startsWith('param_')) params[k.slice(6)] = v;
      else if (INSERT_SETTINGS.test(k)) settings[k] = v;
      else if (QUERY_SETTINGS.test(k)) querySettings.push(`${k} = '${v.replace(/[\\']/g, (c) => `\\${c}`)}'`);
    }
    const data = await body(req);
    const queryParam = url.searchParams.get('query');
    const database = url.searchParams.get('database');
    try {
      if (database && database !== 'default') throw new Error(`Code: 81. DB::Exception: Database ${database} does not exist in this test endpoint. (UNKNOWN_DATABASE)`);
      const insert = queryParam ? INSERT.exec(queryParam) : null;
      if (insert) {
        log.push({ sql: queryParam ?? '', params, encoding: req.headers['content-encoding'] });
        const [, table = '', columns, format = ''] = insert;
        if (format === 'RowBinary') {
          // chdb reads binary formats from files only.
          const file = join(spool, `${++spooled}.bin`);
          writeFileSync(file, data);
          const settingsSql = Object.entries(settings).map(([k, v]) => `${k} = '${v.replace(/[\\']/g, (c) => `\\${c}`)}'`).join(', ');
          await session.queryAsync(`INSERT INTO ${table} (${columns ?? ''}) FROM INFILE '${file}'${settingsSql ? ` SETTINGS ${settingsSql}` : ''} FORMAT RowBinary`, { format: 'TSV' });
          rmSync(file);
        } else await session.insert({
          table: table.replace(/[`"]/g, ''),
          values: data,
          format: format as 'JSONEachRow',
          ...(columns ? { columns: columns.split(',').map((c) => c.trim().replace(/[`"]/g, '')) } : {}),
          settings,
        });
        res.writeHead(200, { 'content-type': 'text/plain', 'x-clickhouse-summary': '{}' });
        res.end();
        return;
      }
      const text = queryParam ? `${queryParam}\n${data.toString()}` : data.toString();
      // URL settings go into the statement's SETTINGS clause (before FORMAT), as ClickHouse applies them to the query.
      const [, statement = text, format = ''] = /^([\s\S]*?)(\s+FORMAT\s+\w+\s*)?$/i.exec(text) ?? [];
      const sql = querySettings.length === 0 ? text : `${statement}${/\sSETTINGS\s+[\w\s=',.]+$/.test(statement) ? ',' : ' SETTINGS'} ${querySettings.join(', ')}${format}`;
      log.push({ sql, params });
      const types = placeholderTypes(sql);
      for (const [name, value] of Object.entries(params)) {
        if (/^(LowCardinality\()?(Nullable\()?(String|FixedString\(\d+\))\)?\)?$/.test(types.get(name) ?? '')) params[name] = unescape(value);
      }
      const result = Object.keys(params).length > 0 ? await session.queryBindAsync(sql, params, { format: 'TabSeparated' }) : await session.queryAsync(sql, { format: 'TabSeparated' });
      const out = Buffer.from(result.bytes());
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8', 'content-length': out.byteLength, 'x-clickhouse-summary': '{}' });
      res.end(out);
    } catch (err) {
      fail(res, err);
    }
  };

  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    const s = createServer((req, res) => void handle(req, res).catch((err: unknown) => fail(res, err)));
    s.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    port = await listenOutsideEphemeral(s, port);
    server = s;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (!s) return;
    for (const sock of sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    log,
    down: stop,
    up: listen,
    async close() {
      await stop();
      session.close();
      // The engine binds one data directory per process: let queries still running end, so the next
      // test may open embedded storage elsewhere at once.
      await drainPending();
      rmSync(spool, { recursive: true, force: true });
    },
  };
}
