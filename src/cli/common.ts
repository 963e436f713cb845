import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { JsonObject } from '@bufbuild/protobuf';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { parseDuration } from '../config/units.js';
import { connect, type AgentClient } from './client.js';

/** Options every client command takes. */
export interface GlobalOptions {
  addr: string;
  token?: string;
  json?: boolean;
  tls?: boolean;
  ca?: string;
}

/** Writes one line to stdout. */
export const out = (line: string): void => void process.stdout.write(`${line}\n`);

/** Columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [header, ...rows]) out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

/** `text` at most `max` characters long: cut to `max - 1` and `…` when longer. */
export const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** Exit status of a client command whose id (a trace or correlation id, a security action id) has nothing stored; 1 is a refused call or bad input. */
export const EXIT_NOT_FOUND = 3;

export const iso = (ts: Timestamp | undefined): string => (ts ? timestampDate(ts).toISOString() : '');
export const ago = (text: string, option: string): Date => {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`${option}: expected a duration such as 15m, 1h or 7d, got ${JSON.stringify(text)}`);
  return new Date(Date.now() - ms);
};
export const tsOf = (d: Date): { seconds: bigint; nanos: number } => ({ seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1e6 });

/** A positive integer option; throws naming the option. */
export function positive(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${option}: expected a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

/** Parses an option's value as a JSON object; a readable error naming the option otherwise. */
export function jsonObject(text: string, option: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`${option}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${option}: expected a JSON object`);
  return v as JsonObject;
}

/**
 * Runs `fn` with a client from the command's global options; gRPC failures become one readable line
 * and exit 1, or `notFoundExit` for NOT_FOUND when given (a command on an id).
 */
export async function withClient(cmd: Command, fn: (client: AgentClient, opts: GlobalOptions) => Promise<void>, notFoundExit = 1): Promise<void> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const client = connect({ addr: opts.addr, token: opts.token, tls: opts.tls, ca: opts.ca });
  try {
    await fn(client, opts);
  } catch (err) {
    const e = err as ServiceError;
    if (typeof e.code === 'number') {
      process.stderr.write(`heimdall: ${status[e.code]}: ${e.details || e.message}\n`);
      process.exitCode = e.code === status.NOT_FOUND ? notFoundExit : 1;
    } else throw err;
  } finally {
    client.close();
  }
}

/** A command that talks to a running agent: it takes the connection options (--addr, --token, --json, --tls, --ca). */
export function clientCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option('--addr <host:port>', 'the agent\'s gRPC address', process.env.HEIMDALL_ADDR ?? '127.0.0.1:4317')
    .option('--token <token>', 'API token (default: $HEIMDALL_TOKEN)', process.env.HEIMDALL_TOKEN)
    .option('--json', 'one JSON object per line')
    .option('--tls', 'connect with TLS')
    .option('--ca <file>', 'CA bundle to trust (with --tls)');
}


/** Parses an option's value as an integer from 1 to `max`; a readable error naming the option otherwise. */
export function positiveInt(text: string, option: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${option}: expected an integer from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

/** Parses an option's value as a duration in milliseconds (250ms, 2s, 1m); a readable error naming the option otherwise. */
export function durationMs(text: string, option: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`${option}: expected a duration such as 250ms, 2s or 1m, got ${JSON.stringify(text)}`);
  return ms;
}
