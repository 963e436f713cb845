import { join } from 'node:path';
import type { Counter } from 'prom-client';
import type { Logger } from '../../telemetry/logger.js';
import { writeFileAtomic, type QueueFiles } from './queue-files.js';

/** Options for createDeadLetterFolder. */
export interface DeadLetterFolderOptions {
  /** The folder (created at the first write). */
  path: string;
  files: QueueFiles;
  /** Bytes the folder may hold (ingest.queue.dead_letter_max_size). */
  maxBytes: number;
  /** Counts files removed to stay within maxBytes. */
  removed: Counter;
  logger: Logger;
}

/**
 * The files of the dead-letter folder within a byte budget: a write first removes the oldest files
 * (lowest sequence number in their names; each logged and counted) until it fits, so the folder
 * holds the newest failures. Writes are atomic and durable.
 */
export interface DeadLetterFolder {
  /** Lists what the folder holds (for the budget). Never throws: without a listing, the budget counts only new files. */
  start(): Promise<void>;
  /** Writes a file within the budget; false (and nothing removed) when it is larger than the whole budget. Throws when a removal or the write fails. */
  write(name: string, data: Buffer): Promise<boolean>;
  /** Bytes the folder holds. */
  readonly bytes: number;
}

/** The sequence number a dead-letter file's name starts from: files are removed oldest (lowest) first. */
const orderOf = (name: string): bigint => BigInt(/^(?:damaged-seg-)?(\d+)/.exec(name)?.[1] ?? '0');

/** Creates the dead-letter folder's budget over `path`. */
export function createDeadLetterFolder(options: DeadLetterFolderOptions): DeadLetterFolder {
  const { path, files, maxBytes, logger } = options;
  /** The folder's files, oldest first, with their sizes. */
  let held: Array<{ name: string; bytes: number }> = [];
  const total = (): number => held.reduce((n, f) => n + f.bytes, 0);

  /** Removes the oldest files until `bytes` more fit the budget. */
  const makeRoom = async (bytes: number): Promise<void> => {
    let sum = total();
    while (held.length > 0 && sum + bytes > maxBytes) {
      const oldest = held[0] as { name: string; bytes: number };
      await files.unlink(join(path, oldest.name));
      held.shift();
      sum -= oldest.bytes;
      options.removed.inc();
      logger.error({ file: join(path, oldest.name), bytes: oldest.bytes, maxBytes }, 'durable queue: removed the oldest dead-letter file to stay within ingest.queue.dead_letter_max_size');
    }
  };

  return {
    async start() {
      try {
        const names = (await files.readdir(path).catch(() => [])).filter((n) => !n.startsWith('.'));
        const sizes = await Promise.all(names.map((n) => files.size(join(path, n))));
        held = names.map((name, i) => ({ name, bytes: sizes[i] ?? 0 })).sort((a, b) => (orderOf(a.name) < orderOf(b.name) ? -1 : orderOf(a.name) > orderOf(b.name) ? 1 : 0));
      } catch (err) {
        logger.warn({ err }, 'durable queue: cannot list the dead-letter directory; its budget counts only new files');
      }
    },
    async write(name, data) {
      if (data.length > maxBytes) return false;
      await makeRoom(data.length);
      await files.mkdir(path);
      await writeFileAtomic(files, path, name, data);
      held.push({ name, bytes: data.length });
      return true;
    },
    get bytes() {
      return total();
    },
  };
}
