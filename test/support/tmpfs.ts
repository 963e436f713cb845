import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp.js';

/** A real tmpfs of a fixed size: a small disk that fills up. */
export interface Tmpfs {
  readonly path: string;
  /** Bytes free for a writer right now. */
  free(): number;
  /** Writes a filler file that leaves about `leaveBytes` free; `unfill` removes it. */
  fill(leaveBytes?: number): void;
  unfill(): void;
  /** Changes its size (`mount -o remount,size=...`), e.g. to give space back. */
  resize(size: string): void;
  /** Unmounts it and removes the mount point. Safe to call twice. */
  unmount(): void;
}

/** Mounts a tmpfs of `size` (e.g. "12m"); needs root. Throws when it cannot. */
export function mountTmpfs(size: string): Tmpfs {
  const dir = tempDir('heimdall-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir.path], { stdio: 'pipe' });
  } catch (err) {
    dir.cleanup();
    throw new Error(`cannot mount a tmpfs: ${(err as Error).message}`, { cause: err });
  }
  let mounted = true;
  const filler = join(dir.path, 'filler');
  const free = (): number => {
    const s = statfsSync(dir.path);
    return Number(s.bavail) * Number(s.bsize);
  };
  return {
    path: dir.path,
    free,
    fill(leaveBytes = 0) {
      // Written in chunks until the disk is full (or only leaveBytes are left): others (the engine)
      // may write meanwhile, so the space free before is only a guess.
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(1 << 20);
      try {
        for (let room = free() - leaveBytes; room > 0; room = free() - leaveBytes) writeSync(fd, chunk, 0, Math.min(chunk.length, room));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    unfill: () => rmSync(filler, { force: true }),
    resize: (s) => execFileSync('mount', ['-o', `remount,size=${s}`, dir.path], { stdio: 'pipe' }),
    unmount() {
      if (!mounted) return;
      mounted = false;
      execFileSync('umount', ['-l', dir.path], { stdio: 'pipe' });
      dir.cleanup();
    },
  };
}

/**
 * Whether this machine lets the tests mount a tmpfs (it needs root). In CI (which runs as root) not
 * being able to fails the test; locally the test is skipped with the reason printed.
 */
export function canMountTmpfs(): boolean {
  try {
    mountTmpfs('1m').unmount();
    return true;
  } catch (err) {
    if (process.env.CI) throw new Error(`mounting a tmpfs is required in CI (it runs as root): ${(err as Error).message}`, { cause: err });
    console.warn(`skipping: cannot mount a tmpfs here (${(err as Error).message}); CI runs these tests as root`);
    return false;
  }
}
