import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../../src/telemetry/logger.js';

/** A fresh temporary directory; removed by the returned cleanup. */
export function tempDir(prefix = 'heimdall-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A logger that writes nothing (tests assert on behaviour, not log lines). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
