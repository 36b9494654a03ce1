#!/usr/bin/env node
/**
 * The `herald` command: `serve`, and the clients `publish`, `subscribe`, `history`, `channels`,
 * `presence`, `info`, `token`. Run `herald help` for usage; docs/cli.md documents it.
 *
 * Exit codes: 0 ok, 1 server or network error, 2 usage error. Errors are one line on stderr.
 */
import { commandHelp, isCommand, mainHelp, type CommandName } from './help.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE, wantsHelp } from './output.js';
import { VERSION } from '../version.js';

type Run = (argv: string[]) => Promise<number>;

/** Each command's code, loaded when it runs: `herald publish` does not load the server. */
const RUN: Record<Exclude<CommandName, 'help' | 'version'>, () => Promise<Run>> = {
  serve: async () => (await import('./serve.js')).runServe,
  publish: async () => (await import('./client-commands.js')).runPublish,
  subscribe: async () => (await import('./client-commands.js')).runSubscribe,
  history: async () => (await import('./query-commands.js')).runHistory,
  channels: async () => (await import('./query-commands.js')).runChannels,
  presence: async () => (await import('./query-commands.js')).runPresence,
  info: async () => (await import('./query-commands.js')).runInfo,
  token: async () => (await import('./token.js')).runToken,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const [topic] = rest;
    if (command === 'help' && topic !== undefined) {
      if (!isCommand(topic)) {
        console.error(`herald: no command "${topic}" (herald help lists them)`);
        return EXIT_USAGE;
      }
      console.log(commandHelp(topic));
      return 0;
    }
    console.log(mainHelp());
    return 0;
  }
  if (command === 'version' || command === '--version' || command === '-v') {
    if (wantsHelp(rest)) console.log(commandHelp('version'));
    else console.log(VERSION);
    return 0;
  }
  if (!isCommand(command)) {
    console.error(`herald: unknown command "${command}" (herald help lists the commands)`);
    return EXIT_USAGE;
  }
  if (wantsHelp(rest)) {
    console.log(commandHelp(command));
    return 0;
  }
  try {
    const run = await RUN[command as keyof typeof RUN]();
    return await run(rest);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    const usage = err.exitCode === EXIT_USAGE ? ` (herald ${command} --help for usage)` : '';
    console.error(`herald ${command}: ${err.message}${usage}`);
    return err.exitCode;
  }
}

// `herald subscribe | head -1`: the reader went away; that is the end, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') process.stderr.write(`herald: cannot write the output: ${err.message}\n`);
  process.exit(err.code === 'EPIPE' ? 0 : EXIT_FAILURE);
});

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`herald: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = EXIT_FAILURE;
  },
);
