#!/usr/bin/env node
/**
 * The `herald` command: `serve`, `publish`, `subscribe`, `token`. Run `herald help` for usage.
 */
import { runServe } from './serve.js';
import { runPublish, runSubscribe } from './client-commands.js';
import { runToken } from './token.js';
import { VERSION } from '../version.js';

const USAGE = `herald ${VERSION} — real-time messaging server

Usage:
  herald serve [--config file] [--port N] [--host H] [--engine memory|redis] [--redis URL] [--api-key KEY] [--log-level L] [--no-demos]
  herald publish <channel> <json> [--url URL] [--api-key KEY] [--idempotency-key K]
  herald subscribe <channel|pattern.**> [--url URL] [--backlog N]
  herald token --sub ID [--subscribe P] [--publish P] [--ttl 1h] [--info JSON] [--private-key F]  (dev tokens; --help)
  herald version | help

Environment: HERALD_URL (default http://localhost:8080) and HERALD_API_KEY for publish/subscribe;
HERALD_* variables configure serve (see docs/configuration.md).`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return runServe(rest);
    case 'publish':
      return runPublish(rest);
    case 'subscribe':
      return runSubscribe(rest);
    case 'token':
      return runToken(rest);
    case 'version':
    case '--version':
    case '-v':
      console.log(VERSION);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`herald: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`herald: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
