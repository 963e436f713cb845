#!/usr/bin/env node
import { Command } from 'commander';
import { stringify } from 'yaml';
import { createAgent } from './agent.js';
import { addClientCommands } from './cli/commands.js';
import { checkTokens, TokenFileError } from './auth/auth.js';
import { ConfigError, loadConfig, maskSecrets, type LoadedConfig } from './config/load.js';
import { configWarnings } from './config/warnings.js';
import { migrate } from './storage/migrate.js';
import { openTransport, schemaContextFor } from './storage/storage.js';
import { createLogger } from './telemetry/logger.js';
import { BUILD, VERSION } from './version.js';

/** Exit code for an invalid configuration (sysexits EX_CONFIG). */
const EXIT_CONFIG = 78;

function load(path: string | undefined): LoadedConfig {
  try {
    return loadConfig(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`heimdall: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

/**
 * Ends the process with `code` as process.exit does (the 'exit' listeners run: pino writes out the
 * lines it holds), but without exit(3)'s native handlers: with the embedded engine's background
 * threads still running (a second signal while draining, a shutdown past its timeout, a crash),
 * ClickHouse's static destructors can deadlock, and the process would never end. execve(2) replaces
 * the process image, ending every thread; the new image, a bare Node, exits with `code`. Where execve
 * is not available (Windows), this is process.exit.
 */
function exitNow(code: number): never {
  if (!process.execve) process.exit(code);
  process.exitCode = code;
  process.emit('exit', code);
  return process.execve(process.execPath, [process.execPath, '-e', `process.exit(${String(code)})`], {});
}

async function run(opts: { config?: string }): Promise<void> {
  const loaded = load(opts.config);
  const logger = createLogger({ level: loaded.config.log.level });
  let agent: ReturnType<typeof createAgent>;
  try {
    agent = createAgent({ loaded, logger });
  } catch (err) {
    if (!(err instanceof TokenFileError)) throw err;
    process.stderr.write(`heimdall: ${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      exitNow(signal === 'SIGINT' ? 130 : 143);
      return;
    }
    logger.info({ signal }, 'signal received');
    const limit = setTimeout(() => {
      logger.error({ timeoutMs: loaded.config.shutdown.timeout }, 'shutdown did not finish in time: exiting');
      exitNow(1);
    }, loaded.config.shutdown.timeout);
    limit.unref();
    agent.shutdown().then(
      () => exitNow(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        exitNow(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP: read the file again; an invalid file keeps the running configuration.
  process.on('SIGHUP', () => {
    try {
      agent.reload(loadConfig(opts.config));
    } catch (err) {
      logger.error({ err: err instanceof ConfigError ? undefined : err, reason: (err as Error).message }, 'configuration not reloaded: keeping the running one');
    }
  });
  // A bug that escapes every handler leaves the process in an unknown state: say so, then exit
  // non-zero (with ack: queued, acknowledged data is on disk and replays at the next start).
  const crash = (err: unknown, what: string): void => {
    logger.fatal({ err }, `${what}: exiting`);
    exitNow(1);
  };
  process.on('unhandledRejection', (err) => crash(err, 'unhandled promise rejection'));
  process.on('uncaughtException', (err) => crash(err, 'uncaught exception'));
  try {
    await agent.start();
  } catch (err) {
    logger.fatal({ err }, `cannot start: ${(err as Error).message}`);
    exitNow(1);
  }
}

async function runMigrate(opts: { config?: string }): Promise<void> {
  const { config } = load(opts.config);
  const logger = createLogger({ level: config.log.level });
  const transport = await openTransport(config.storage);
  try {
    await transport.ping();
    const report = await migrate(transport, schemaContextFor(config.storage), logger);
    process.stdout.write(`storage schema is up to date on ${transport.target} (applied: ${report.applied.length > 0 ? report.applied.join(', ') : 'none'}; retention updated: ${report.retentionUpdated.length > 0 ? report.retentionUpdated.join(', ') : 'none'})\n`);
  } finally {
    await transport.close();
  }
}

const program = new Command()
  .name('heimdall')
  .description('OpenTelemetry-native observability sidecar: OTLP into ClickHouse, queries, health, metrics, rate limits (and their security layer) and jobs.')
  .version(`${VERSION} (${BUILD})`, '-V, --version')
  .showHelpAfterError();

/** A command that reads the configuration file. */
const withConfig = (name: string, description: string) =>
  program.command(name).description(description).option('-c, --config <path>', 'configuration file (default: $HEIMDALL_CONFIG, else built-in defaults)');

withConfig('run', 'run the agent (default command)').action(run);

withConfig('check-config', 'validate the configuration (and auth.tokens_file) and print the effective configuration with secrets masked').action((opts: { config?: string }) => {
    const loaded = load(opts.config);
    let tokens: number;
    try {
      tokens = checkTokens(loaded.config.auth);
    } catch (err) {
      if (!(err instanceof TokenFileError)) throw err;
      process.stderr.write(`heimdall: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    const file = loaded.config.auth.tokens_file;
    for (const warning of configWarnings(loaded.config)) process.stderr.write(`heimdall: warning: ${warning}\n`);
    process.stdout.write(
      `# ${loaded.source ?? 'built-in defaults'} is valid; sha256 ${loaded.hash}\n${file ? `# auth.tokens_file ${file} is valid\n` : ''}# ${tokens} API tokens\n# durations in milliseconds, sizes in bytes\n${stringify(maskSecrets(loaded.config))}`,
    );
  });

withConfig('migrate', 'apply the storage schema (migrations and retention) and exit').action(runMigrate);

addClientCommands(program);

program
  .command('version')
  .description('print the version and build')
  .action(() => {
    process.stdout.write(`heimdall ${VERSION} (build ${BUILD}, node ${process.version})\n`);
  });

/**
 * The arguments with `run` put first when they name no command (none at all, or options only:
 * `heimdall --config x`). Commander's own default command would also take a mistyped command as
 * an argument of `run` ("too many arguments for 'run'"); this way commander answers it as an
 * unknown command, with a suggestion.
 */
function withDefaultCommand(args: string[]): string[] {
  const first = args[0];
  const programOption = first === '-h' || first === '--help' || first === '-V' || first === '--version';
  return first === undefined || (first.startsWith('-') && !programOption) ? ['run', ...args] : args;
}

// A reader that goes away (`heimdall events --json | head -1`) ends the output, not in a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

program.parseAsync(withDefaultCommand(process.argv.slice(2)), { from: 'user' }).catch((err: unknown) => {
  process.stderr.write(`heimdall: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
