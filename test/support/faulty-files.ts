import { basename } from 'node:path';
import { nodeQueueFiles, type QueueFile, type QueueFiles } from '../../src/ingest/pipeline/queue-files.js';

/** A failure to inject: an error code, or `short` (a write that takes only part of its bytes). */
export type Fault = 'ENOSPC' | 'EIO' | 'short';

/** One call the queue made to its files: the operation and what it was on (`writev:segment`, `rename:checkpoint-tmp`, ...). */
export interface FileCall {
  key: string;
  /** How many calls with this key came before it. */
  occurrence: number;
  /** The file or directory. */
  path: string;
}

/** The queue's real files (node:fs) with failures injected where `decide` says. */
export interface FaultyFiles extends QueueFiles {
  /** Every call so far (reads and writes), in order. */
  readonly calls: FileCall[];
  /** Decides, per call, whether it fails and how (undefined: it runs). */
  decide: (call: FileCall) => Fault | undefined;
}

const kindOf = (path: string): string => {
  const name = basename(path);
  if (path.includes('dead-letter')) return 'dead-letter';
  if (/^seg-\d+\.wal$/.test(name)) return 'segment';
  if (name === 'checkpoint') return 'checkpoint';
  if (name === '.checkpoint.tmp') return 'checkpoint-tmp';
  if (name.endsWith('.json')) return 'legacy-state';
  return 'dir';
};

const failure = (code: string, key: string): Error => Object.assign(new Error(`${code}: injected failure, ${key}`), { code });

/** Wraps node:fs for the queue; `short` writes half the bytes of a writev (and returns that count). */
export function faultyFiles(decide: FaultyFiles['decide'] = () => undefined): FaultyFiles {
  const calls: FileCall[] = [];
  const counts = new Map<string, number>();
  const self: FaultyFiles = {
    calls,
    decide,
    open: async (path, flags) => {
      await gate(`open-${flags}`, path);
      return wrap(await nodeQueueFiles.open(path, flags), path);
    },
    readFile: async (path) => (await gate('readFile', path), nodeQueueFiles.readFile(path)),
    readdir: async (path) => (await gate('readdir', path), nodeQueueFiles.readdir(path)),
    mkdir: async (path) => (await gate('mkdir', path), nodeQueueFiles.mkdir(path)),
    rename: async (from, to) => (await gate('rename', from), nodeQueueFiles.rename(from, to)),
    unlink: async (path) => (await gate('unlink', path), nodeQueueFiles.unlink(path)),
    size: async (path) => (await gate('size', path), nodeQueueFiles.size(path)),
    fsyncDir: async (path) => (await gate('fsyncDir', path), nodeQueueFiles.fsyncDir(path)),
  };
  /** Records a call; throws its injected error, or resolves with `short` / undefined. */
  async function gate(op: string, path: string): Promise<Fault | undefined> {
    const key = `${op}:${kindOf(path)}`;
    const occurrence = counts.get(key) ?? 0;
    counts.set(key, occurrence + 1);
    const call = { key, occurrence, path };
    calls.push(call);
    const fault = self.decide(call);
    if (fault === 'ENOSPC' || fault === 'EIO') throw failure(fault, key);
    return fault;
  }
  function wrap(file: QueueFile, path: string): QueueFile {
    return {
      async writev(buffers, position) {
        const fault = await gate('writev', path);
        if (fault !== 'short') return file.writev(buffers, position);
        const all = Buffer.concat(buffers);
        return file.writev([all.subarray(0, Math.floor(all.length / 2))], position);
      },
      datasync: async () => (await gate('datasync', path), file.datasync()),
      truncate: async (length) => (await gate('truncate', path), file.truncate(length)),
      read: async (buffer, length, position) => (await gate('read', path), file.read(buffer, length, position)),
      size: () => file.size(),
      close: () => file.close(),
    };
  }
  return self;
}
