import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** An open file of the durable queue. Every method may fail (ENOSPC, EIO, EMFILE, ...). */
export interface QueueFile {
  /** One write of `buffers` at `position`; resolves with the bytes written, which can be fewer than asked (a short write). */
  writev(buffers: readonly Buffer[], position: number): Promise<number>;
  /** fdatasync: what was written (and the file's size) is on disk once it resolves. */
  datasync(): Promise<void>;
  /** Sets the file's size. */
  truncate(length: number): Promise<void>;
  /** Reads up to `length` bytes at `position` into `buffer`; resolves with the bytes read. */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  /** The file's size on disk now. */
  size(): Promise<number>;
  close(): Promise<void>;
}

/**
 * The file system calls the durable queue makes, and nothing else: node:fs by default; tests inject
 * ENOSPC, EIO and short writes at any call.
 */
export interface QueueFiles {
  /** Opens `path`: `r` to read, `r+` to write in place, `w` to create or empty it. */
  open(path: string, flags: 'r' | 'r+' | 'w'): Promise<QueueFile>;
  readFile(path: string): Promise<Buffer>;
  /** Names in a directory. */
  readdir(path: string): Promise<string[]>;
  /** Creates a directory and its parents; no error when it exists. */
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; no error when it is missing. */
  unlink(path: string): Promise<void>;
  /** The size of a file, or undefined when there is none. */
  size(path: string): Promise<number | undefined>;
  /** fsyncs a directory, so a created, renamed or removed entry survives a crash. */
  fsyncDir(path: string): Promise<void>;
}

function nodeFile(fh: FileHandle): QueueFile {
  return {
    writev: async (buffers, position) => (await fh.writev(buffers, position)).bytesWritten,
    datasync: () => fh.datasync(),
    truncate: (length) => fh.truncate(length),
    read: async (buffer, length, position) => (await fh.read(buffer, 0, length, position)).bytesRead,
    size: async () => (await fh.stat()).size,
    close: () => fh.close(),
  };
}

/** The queue's file calls on node:fs. */
export const nodeQueueFiles: QueueFiles = {
  open: async (path, flags) => nodeFile(await open(path, flags)),
  readFile: (path) => readFile(path),
  readdir: (path) => readdir(path),
  mkdir: async (path) => {
    await mkdir(path, { recursive: true });
  },
  rename: (from, to) => rename(from, to),
  unlink: async (path) => {
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  },
  size: async (path) => {
    try {
      return (await stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  },
  fsyncDir: async (path) => {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

/** Reads up to `length` bytes of a file from `offset` (fewer at its end). */
export async function readRange(files: QueueFiles, path: string, offset: number, length: number): Promise<Buffer> {
  const file = await files.open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = await file.read(buf.subarray(got), length - got, offset + got);
      if (n <= 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    await file.close();
  }
}

/** A write that made no progress: the disk took none of the remaining bytes. */
export class ShortWriteError extends Error {
  override name = 'ShortWriteError';
  readonly code = 'ESHORTWRITE';
}

/**
 * Writes all of `buffers` at `position`, writing the rest again after a short write; throws when a
 * write fails or makes no progress.
 */
export async function writeAll(file: QueueFile, buffers: readonly Buffer[], position: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  let done = 0;
  let rest = buffers.filter((b) => b.length > 0);
  while (done < total) {
    const n = await file.writev(rest, position + done);
    if (!(n > 0)) throw new ShortWriteError(`short write: ${done} of ${total} bytes written, then none`);
    done += n;
    // Drop what was written from the front of the list.
    let skip = n;
    while (skip > 0 && rest.length > 0) {
      const head = rest[0] as Buffer;
      if (head.length <= skip) {
        skip -= head.length;
        rest = rest.slice(1);
      } else {
        rest = [head.subarray(skip), ...rest.slice(1)];
        skip = 0;
      }
    }
  }
}

/**
 * Writes a small file atomically and durably: write a temporary file, fdatasync, rename, fsync the
 * directory. A failure at any step leaves the previous file (or none) in place; a temporary file
 * that could not be written is removed.
 */
export async function writeFileAtomic(files: QueueFiles, dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`);
  const file = await files.open(tmp, 'w');
  try {
    await writeAll(file, [data], 0);
    await file.datasync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await files.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await file.close();
  await files.rename(tmp, join(dir, name));
  await files.fsyncDir(dir);
}

/** True for the errors a full disk or quota gives. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
