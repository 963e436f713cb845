import { afterAll, vi } from 'vitest';

// Unit files share worker processes (vitest.config.ts): a file that fakes timers must not leave them
// faked for the next file.
afterAll(() => {
  vi.useRealTimers();
});
