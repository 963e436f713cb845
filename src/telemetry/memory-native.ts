import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from './logger.js';

/** The native module's calls (memory-native.c). */
interface NativeCalls {
  unmapPages(start: number, length: number): void;
  trimHeap(): boolean;
}

/** A mapping of a file into this process (from /proc/self/smaps). */
export interface Mapping {
  start: number;
  length: number;
  writable: boolean;
  path: string;
  /** Its pages in memory that the file backs (Rss less Anonymous). */
  fileResident: number;
  /** Its pages written to (copies of the file's, e.g. relocated data), which only this process has. */
  anonymous: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s+(.*)$/;

/** Parses /proc/self/smaps text: the mappings backed by a file (anonymous and special ones left out). */
export function fileMappings(smaps: string): Mapping[] {
  const out: Mapping[] = [];
  let current: Mapping | undefined;
  const close = () => {
    if (current?.path.startsWith('/')) out.push({ ...current, fileResident: Math.max(0, current.fileResident - current.anonymous) });
  };
  for (const line of smaps.split('\n')) {
    const m = HEADER.exec(line);
    if (m) {
      close();
      const start = Number.parseInt(m[1]!, 16);
      current = { start, length: Number.parseInt(m[2]!, 16) - start, writable: m[3]![1] === 'w', path: m[4]!.trimEnd(), fileResident: 0, anonymous: 0 };
    } else if (current && line.startsWith('Rss:')) current.fileResident = kB(line);
    else if (current && line.startsWith('Anonymous:')) current.anonymous = kB(line);
  }
  close();
  return out;
}

const kB = (line: string): number => Number(/(\d+) kB/.exec(line)?.[1] ?? 0) * 1024;

/**
 * Where dist/native/memory.node is from this module: beside dist/'s modules and bundle
 * (`../native/`), or, from the TypeScript sources (vitest), in dist/ two levels up.
 */
const MODULE_URL = new URL(import.meta.url.endsWith('.ts') ? '../../dist/native/memory.node' : '../native/memory.node', import.meta.url);

/** Loads the native module (scripts/build-native.mjs builds it); the error says why when it cannot. */
export function loadNativeCalls(url: URL = MODULE_URL): NativeCalls | Error {
  try {
    return createRequire(import.meta.url)(fileURLToPath(url)) as NativeCalls;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Options for createNativeRelease. */
export interface NativeReleaseOptions {
  logger: Logger;
  /** File names (e.g. `libchdb.so`) whose read-only, never-written mappings are unmapped. */
  unmap: readonly string[];
  /** Growth of those mappings' pages in memory since the last unmapping that unmaps them again, in bytes (default 16 MiB). */
  growthBytes?: number;
  /** The native calls (default: loaded from dist/native/memory.node). */
  calls?: NativeCalls | Error;
  /** Reads /proc/self/smaps (default: the file). */
  readSmaps?: () => string;
}

/** What one release gave back. */
export interface Released {
  /** File pages of the named libraries' read-only mappings in memory before and after (the same when not unmapped this time). */
  libraryResidentBytes?: { before: number; after: number };
  /** Whether malloc_trim gave memory back. */
  trimmed: boolean;
}

/**
 * Creates the release the memory return runs after each collection: memory outside V8 that a quiet
 * process holds for nothing. (1) The read-only mappings of the libraries named that hold no written
 * page (the embedded engine's code and read-only data: 566 MB mapped, of which its start-up alone
 * faulted in ~180 MiB that runs once) are unmapped with MADV_DONTNEED, the first time and then
 * whenever their pages in memory grew by `growthBytes` since (a load ran code a quiet agent does
 * not): the process's resident memory falls, the pages stay in the page cache (clean and no longer
 * mapped: the first the kernel reclaims under pressure), and the code that runs again maps them back
 * (the first query after it took 18-38 ms instead of 2-3). A mapping with written pages (the
 * library's relocated data) is left alone: they would be lost. (2) glibc's malloc_trim gives back
 * the free pages of every malloc arena (freed blocks below live ones, which the arenas keep after a
 * load). Without the native module it says why once; a failed unmapping warns once and is not tried
 * again; it never throws.
 */
export function createNativeRelease(options: NativeReleaseOptions): () => Released {
  const calls = options.calls ?? loadNativeCalls();
  const readSmaps = options.readSmaps ?? (() => readFileSync('/proc/self/smaps', 'utf8'));
  const growthBytes = options.growthBytes ?? 16 * 2 ** 20;
  const names = new Set(options.unmap);
  if (calls instanceof Error) {
    options.logger.info({ err: calls.message }, 'native memory module not loaded: memory outside the JavaScript heap is given back only by the kernel under pressure');
    return () => ({ trimmed: false });
  }
  const libraries = () => fileMappings(readSmaps()).filter((m) => !m.writable && m.anonymous === 0 && names.has(basename(m.path)));
  const resident = (ms: Mapping[]) => ms.reduce((sum, m) => sum + m.fileResident, 0);
  let unmap = names.size > 0;
  let afterLast: number | undefined;
  const release = (): Released['libraryResidentBytes'] => {
    try {
      const mapped = libraries();
      const before = resident(mapped);
      if (afterLast !== undefined && before - afterLast < growthBytes) return { before, after: before };
      for (const m of mapped) calls.unmapPages(m.start, m.length);
      afterLast = resident(libraries());
      return { before, after: afterLast };
    } catch (err) {
      unmap = false;
      options.logger.warn({ err, libraries: [...names] }, 'cannot unmap library pages; not trying again');
      return undefined;
    }
  };
  return () => {
    const libraryResidentBytes = unmap ? release() : undefined;
    return { ...(libraryResidentBytes && { libraryResidentBytes }), trimmed: calls.trimHeap() };
  };
}
