import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real small file system (tmpfs) for full-disk tests: it can be filled, grown and unmounted. */
export interface Tmpfs {
  readonly path: string;
  /** Bytes free for an unprivileged writer right now. */
  free(): number;
  /** Writes a filler file that leaves about `leaveBytes` free; `unfill` removes it. */
  fill(leaveBytes?: number): void;
  unfill(): void;
  /** Changes the size of the mounted file system (grows a full disk). */
  resize(bytes: number): void;
  unmount(): void;
}

/**
 * Mounts a tmpfs of `bytes` on a fresh directory. Needs root (CI runs as root): where it cannot
 * mount, it throws in CI and returns undefined locally (the caller skips with the printed reason).
 */
export function mountTmpfs(bytes: number): Tmpfs | undefined {
  const path = mkdtempSync(join(tmpdir(), 'heimdall-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', path], { stdio: 'pipe' });
  } catch (err) {
    rmSync(path, { recursive: true, force: true });
    const why = `cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0] ?? ''}`;
    if (process.env.CI) throw new Error(`${why}; CI must run as root`, { cause: err });
    console.warn(`skipping: ${why}`);
    return undefined;
  }
  const filler = join(path, 'filler');
  return {
    path,
    free: () => {
      const s = statfsSync(path);
      return Number(s.bavail) * Number(s.bsize);
    },
    fill(leaveBytes = 0) {
      const s = statfsSync(path);
      const size = Math.max(0, Number(s.bavail) * Number(s.bsize) - leaveBytes);
      writeFileSync(filler, Buffer.alloc(size));
    },
    unfill() {
      rmSync(filler, { force: true });
    },
    resize(size) {
      execFileSync('mount', ['-o', `remount,size=${size}`, path], { stdio: 'pipe' });
    },
    unmount() {
      execFileSync('umount', ['-l', path], { stdio: 'pipe' });
      rmSync(path, { recursive: true, force: true });
    },
  };
}
