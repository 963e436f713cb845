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
  /** Its pages written to (copies of the file's, e.g. relocated data) that are in memory, which only this process has. */
  anonymous: number;
  /** Its written pages that are swapped out (not counted in `anonymous`). */
  swap: number;
}

/** A mapping's first line in smaps; the name (after the inode) is absent for some anonymous mappings. */
const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+(?:\s+(.*))?$/;
const LOOKS_LIKE_HEADER = /^[0-9a-f]+-[0-9a-f]+ /;

/**
 * Parses /proc/self/smaps text: the mappings backed by a file (anonymous and special ones left out).
 * A header line it cannot read ends the mapping before it without starting one, so its figures never
 * land on another mapping.
 */
export function fileMappings(smaps: string): Mapping[] {
  const out: Mapping[] = [];
  let current: Mapping | undefined;
  const close = () => {
    if (current?.path.startsWith('/')) out.push({ ...current, fileResident: Math.max(0, current.fileResident - current.anonymous) });
    current = undefined;
  };
  for (const line of smaps.split('\n')) {
    const m = HEADER.exec(line);
    if (m || LOOKS_LIKE_HEADER.test(line)) {
      close();
      if (!m) continue;
      const start = Number.parseInt(m[1]!, 16);
      current = { start, length: Number.parseInt(m[2]!, 16) - start, writable: m[3]![1] === 'w', path: (m[4] ?? '').trimEnd(), fileResident: 0, anonymous: 0, swap: 0 };
    } else if (current && line.startsWith('Rss:')) current.fileResident = kB(line);
    else if (current && line.startsWith('Anonymous:')) current.anonymous = kB(line);
    else if (current && line.startsWith('Swap:')) current.swap = kB(line);
  }
  close();
  return out;
}

/**
 * Whether unmapping `m` loses nothing: read-only, and no page of it written, in memory or swapped out
 * (a written page of a private file mapping would be read again from the file). What it cannot see: a
 * page written between the read of smaps and the unmapping (a debugger's breakpoint, an uprobe); the
 * engine writes none of its read-only mappings.
 */
export const unmappable = (m: Mapping): boolean => !m.writable && m.anonymous === 0 && m.swap === 0;

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
  /** File names (e.g. `libchdb.so`) whose read-only mappings with no written page are unmapped (see `unmappable`). */
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
 * page (`unmappable`: the embedded engine's code and read-only data, 566 MB mapped, of which its
 * start-up alone faulted in ~180 MiB that runs once) are unmapped with MADV_DONTNEED, at the first
 * release and then at each release that finds their pages in memory grown by `growthBytes` since
 * (a load ran code a quiet agent does not; releases come only with the memory return's collections,
 * which follow growth of V8's heap and buffers, so engine work alone is looked at by the next one):
 * the process's resident memory falls, the pages stay in the page cache (clean and no longer
 * mapped: the first the kernel reclaims under pressure), and the code that runs again maps them back
 * (bench:unmap: the first trace search after it 38 ms instead of 8.5). A mapping with written pages
 * (the library's relocated data) is left alone: they would be lost. (2) glibc's malloc_trim gives
 * back the free pages of every malloc arena (freed blocks below live ones, which the arenas keep
 * after a load). The module is loaded at the first release, which says why once when it cannot be;
 * a failed unmapping warns once and is not tried again; it never throws.
 */
export function createNativeRelease(options: NativeReleaseOptions): () => Released {
  // Loaded at the first release (5 s after start at the earliest), not on the way to ready.
  let loaded: NativeCalls | Error | undefined;
  const readSmaps = options.readSmaps ?? (() => readFileSync('/proc/self/smaps', 'utf8'));
  const growthBytes = options.growthBytes ?? 16 * 2 ** 20;
  const names = new Set(options.unmap);
  const nativeCalls = (): NativeCalls | Error => {
    if (loaded) return loaded;
    loaded = options.calls ?? loadNativeCalls();
    if (loaded instanceof Error) options.logger.info({ err: loaded.message }, 'native memory module not loaded: memory outside the JavaScript heap is given back only by the kernel under pressure');
    return loaded;
  };
  const libraries = (): Mapping[] => {
    let smaps: string;
    try {
      smaps = readSmaps();
    } catch (err) {
      throw new Error(`cannot read /proc/self/smaps: ${(err as Error).message}`, { cause: err });
    }
    return fileMappings(smaps).filter((m) => unmappable(m) && names.has(basename(m.path)));
  };
  const resident = (ms: Mapping[]) => ms.reduce((sum, m) => sum + m.fileResident, 0);
  let unmap = names.size > 0;
  let afterLast: number | undefined;
  const release = (calls: NativeCalls): Released['libraryResidentBytes'] => {
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
    const calls = nativeCalls();
    if (calls instanceof Error) return { trimmed: false };
    const libraryResidentBytes = unmap ? release(calls) : undefined;
    return { ...(libraryResidentBytes && { libraryResidentBytes }), trimmed: calls.trimHeap() };
  };
}
