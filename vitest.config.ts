import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files run in forked processes, two at a time on a 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
    unstubEnvs: true,
    projects: [
      {
        extends: true,
        test: {
          // Unit tests share their worker processes (no per-file fork and module import: a third of the
          // CPU time of the unit files). Each file restores what it changes; test/support/unit-setup.ts
          // puts real timers back after every file. chdb reopens in the same process between files.
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          isolate: false,
          setupFiles: ['test/support/unit-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          // Integration tests start agents, servers and child processes: one fresh process per file.
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
