import { statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../telemetry/logger.js';

/** A running watch; `close` is safe to call twice. */
export interface PathWatch {
  close(): void;
}

/**
 * Calls `onChange` shortly (`debounceMs`, default 200) after anything changes where `path` lives:
 * the directory itself when `path` is one, else the file's directory. Watching the directory sees
 * editors that replace a file and Kubernetes ConfigMap and Secret volumes, which swap a `..data`
 * symlink instead of writing the file. A path that cannot be watched is logged (changes then need
 * SIGHUP or a restart); never throws.
 */
export function watchPath(path: string, onChange: () => void, logger: Logger, debounceMs = 200): PathWatch {
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    // A missing file: watch its directory, so its creation is seen.
  }
  const target = isDirectory ? path : dirname(path);
  try {
    watcher = watch(target, () => {
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    watcher.on('error', (err) => logger.warn({ err, path: target }, 'stopped watching for changes; they need SIGHUP or a restart'));
  } catch (err) {
    logger.warn({ err, path: target }, 'cannot watch for changes; they need SIGHUP or a restart');
  }
  return {
    close() {
      clearTimeout(timer);
      watcher?.close();
      watcher = undefined;
    },
  };
}
