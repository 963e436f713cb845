import { AgentError } from '../errors/agent-error.js';

/** A storage call failed. `retryable` says whether the same call may succeed later. */
export class StorageError extends Error {
  override name = 'StorageError';
  readonly retryable: boolean;
  /** ClickHouse's numeric error code, when the server or engine gave one. */
  readonly code: number | undefined;
  constructor(message: string, options: { retryable: boolean; code?: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
    this.code = options.code;
  }
}

/** The embedded engine is not installed and no server is configured. */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
}

// ClickHouse error codes that describe a passing condition (overload, timeouts, replicas, network,
// a full disk: 243 NOT_ENOUGH_SPACE).
const RETRYABLE_CODES = new Set([3, 159, 164, 202, 209, 210, 241, 242, 243, 252, 285, 319, 425, 999]);
const NETWORK = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|Timeout error|timed out/i;
/** A full disk, however the engine words it: retrying succeeds once space is freed. */
const DISK_FULL = /ENOSPC|No space left on device|NOT_ENOUGH_SPACE|not enough space/i;

/** Wraps anything thrown by a transport into a StorageError, classifying it as retryable or not. */
export function toStorageError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = errorCode(err, message);
  const text = `${message} ${String((err as { code?: unknown } | undefined)?.code)}`;
  const retryable = (code !== undefined && RETRYABLE_CODES.has(code)) || (code === undefined && NETWORK.test(text)) || DISK_FULL.test(text);
  return new StorageError(`${what}: ${message.split('\n')[0] ?? message}`, { retryable, code, cause: err });
}

function errorCode(err: unknown, message: string): number | undefined {
  const fromField = (err as { clickhouseCode?: unknown; code?: unknown } | undefined)?.clickhouseCode ?? (err as { code?: unknown } | undefined)?.code;
  const n = typeof fromField === 'number' ? fromField : typeof fromField === 'string' && /^\d+$/.test(fromField) ? Number(fromField) : undefined;
  if (n !== undefined) return n;
  const m = /Code: (\d+)\./.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** True for a full disk (ENOSPC, NOT_ENOUGH_SPACE), however the engine or the OS words it. */
export function isDiskFull(err: unknown): boolean {
  return DISK_FULL.test(`${err instanceof Error ? err.message : String(err)} ${String((err as { code?: unknown } | undefined)?.code)}`);
}

/** Storage does not answer now (unreachable, or its schema not migrated yet): retry later. */
export class StorageNotReady extends AgentError {
  override name = 'StorageNotReady';
  constructor(what: string) {
    super('unavailable', `storage is not ready: ${what}; retry later`, 1_000);
  }
}
