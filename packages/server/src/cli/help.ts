/**
 * The help of the `herald` CLI: `herald help`, `herald help <command>`, `herald <command> --help`.
 * docs/cli.md says the same at more length; keep the two in step.
 */
import { VERSION } from '../version.js';

interface CommandHelp {
  /** One line for the command list. */
  readonly summary: string;
  readonly usage: string;
  /** Paragraphs after the usage. */
  readonly about?: string;
  readonly options: readonly (readonly [string, string])[];
  readonly examples: readonly (readonly [string, string?])[];
}

const URL_OPTION = ['--url URL', 'the server (default $HERALD_URL, else http://localhost:8080)'] as const;
const KEY_OPTION = [
  '--api-key KEY',
  'the server API key (default $HERALD_API_KEY; herald serve prints it at start)',
] as const;
const JSON_OPTION = ['--json', 'print JSON (the default when stdout is not a terminal)'] as const;
const HELP_OPTION = ['-h, --help', 'show this help'] as const;

const OUTPUT_NOTE = `Output: readable text on a terminal; JSON when stdout is a pipe or a file, or with --json.
Exit status: 0 ok, 1 server or network error, 2 usage error (errors are one line on stderr).`;

export const COMMANDS = {
  serve: {
    summary: 'run a Herald server',
    usage: 'herald serve [options]',
    about: `Settings come from the config file, then HERALD_* environment variables, then these flags
(docs/configuration.md). Without an API key configured, it generates one for this run and prints it.
Stop with Ctrl-C (or SIGTERM): it closes connections gracefully.`,
    options: [
      ['-c, --config FILE', 'config file (YAML or JSON)'],
      ['-p, --port N', 'port (default 8080; 0 picks a free one)'],
      ['--host HOST', 'address to listen on (default 0.0.0.0)'],
      ['--engine memory|redis|nats', 'one node in memory (default), or several nodes through Redis or NATS'],
      ['--redis URL', 'Redis URL(s) for --engine redis (comma-separated or repeated)'],
      ['--nats URL', 'NATS server URL(s) for --engine nats (comma-separated or repeated)'],
      ['--api-key KEY', 'server API key (repeat for several)'],
      ['--log-level LEVEL', 'trace, debug, info (default), warn, error, fatal, silent'],
      ['--log-format F', 'auto (default: pretty on a terminal), json or pretty'],
      ['--no-demos', 'do not serve the demo pages at /demo/'],
      HELP_OPTION,
    ],
    examples: [
      ['herald serve', 'memory engine on port 8080, generated API key'],
      ['herald serve --port 9000 --api-key my-secret-key'],
      ['herald serve --engine redis --redis redis://localhost:6379'],
      ['herald serve --engine nats --nats nats://localhost:4222'],
      ['herald serve --config herald.yaml'],
    ],
  },
  publish: {
    summary: 'publish a message to a channel',
    usage: 'herald publish <channel> <data> [options]',
    about: `<data> is JSON: '{"text":"hi"}', '"a string"', 42. Give - to read it from stdin.
On a terminal it prints "published to chat.room1 at offset 3 (epoch …)"; otherwise (or with --json)
the server's reply: {"channel","epoch","offset","duplicate"}.`,
    options: [
      ['--idempotency-key K', 'publish at most once for K (a retry gives the first result, duplicate: true)'],
      URL_OPTION,
      KEY_OPTION,
      JSON_OPTION,
      HELP_OPTION,
    ],
    examples: [
      [`herald publish chat.room1 '{"text":"hello"}' --api-key $KEY`],
      [`echo '{"n":1}' | herald publish chat.room1 -`, 'data from stdin'],
      [`herald publish orders.42 '{"paid":true}' --idempotency-key p42`, 'safe to retry'],
    ],
  },
  subscribe: {
    summary: 'print the publications of a channel as they arrive',
    usage: 'herald subscribe <channel | prefix.**> [options]',
    about: `On a terminal: one line per publication (time received, channel, offset, data) and, on stderr,
a status line with the count received and the rate. Otherwise (or with --json): one JSON object per
line, {"channel","offset","data"}, and messages on stderr.
When the server cannot be reached or the connection drops, it tries again with a growing wait (up
to 30 s) and resumes where it left off. Stop with Ctrl-C. Needs no API key: it connects like a
client, anonymously unless --token is given.`,
    options: [
      ['--backlog N', 'first print up to the last N (at most 1000) publications kept in history'],
      ['--count N', 'exit (status 0) after N publications'],
      ['--token JWT', 'connection token, when the server requires one (default $HERALD_TOKEN; see herald token)'],
      URL_OPTION,
      ['--json', 'print JSON lines (the default when stdout is not a terminal)'],
      HELP_OPTION,
    ],
    examples: [
      ['herald subscribe chat.room1'],
      [`herald subscribe 'chat.**' --backlog 10`, 'chat.room1, chat.room2, ... and the last 10 first'],
      [`herald subscribe 'orders.**' | jq .data`, 'JSON lines when piped'],
      ['herald subscribe chat.room1 --count 1', 'wait for one publication, print it, exit'],
    ],
  },
  history: {
    summary: "show a channel's recent publications",
    usage: 'herald history <channel | prefix.**> [options]',
    about: `Shows the publications the server keeps (the namespace's historySize and historyTtl), oldest
first, and the stream's position (epoch:offset, to give to --since later).
With --json: the server's reply, {"stream","epoch","offset","publications":[...]}.`,
    options: [
      ['--limit N', 'at most N publications (default: all that are kept)'],
      ['--latest', 'the newest N (with --limit) instead of the oldest N; still printed oldest first'],
      ['--since EPOCH:OFFSET', 'only the publications after this position'],
      URL_OPTION,
      KEY_OPTION,
      JSON_OPTION,
      HELP_OPTION,
    ],
    examples: [
      ['herald history chat.room1'],
      ['herald history chat.room1 --limit 20 --latest', 'the last 20'],
      [`herald history 'chat.**' --since n5pv9pH17:3`],
    ],
  },
  channels: {
    summary: 'list the channels that have subscribers',
    usage: 'herald channels [pattern] [options]',
    about: `Lists the channels with subscribers on the node that answers, with their subscriber counts and,
for namespaces with presence on, the clients and users present on every node.
pattern: "chat.*" lists the names that start with "chat."; any other pattern, exactly that name.`,
    options: [
      ['--limit N', 'at most N channels (1-10000, default 1000)'],
      URL_OPTION,
      KEY_OPTION,
      JSON_OPTION,
      HELP_OPTION,
    ],
    examples: [['herald channels'], [`herald channels 'chat.*'`], [`herald channels 'game.*' --json`]],
  },
  presence: {
    summary: 'show who is subscribed to a channel',
    usage: 'herald presence <channel> [options]',
    about: `Lists the clients subscribed to an exact channel, on every node, with their user ids and the
info of their tokens. Only for namespaces with presence on (namespaces.<name>.presence: true).`,
    options: [
      ['--count', 'only the numbers of clients and users (presenceStats)'],
      URL_OPTION,
      KEY_OPTION,
      JSON_OPTION,
      HELP_OPTION,
    ],
    examples: [['herald presence game.7'], ['herald presence game.7 --count'], ['herald presence game.7 --json']],
  },
  info: {
    summary: "show the server's version and counters",
    usage: 'herald info [options]',
    about: 'Version, engine, uptime, connections, subscriptions, publications, ... of the node that answers.',
    options: [URL_OPTION, KEY_OPTION, JSON_OPTION, HELP_OPTION],
    examples: [['herald info'], ['herald info --url http://herald.internal:8080 --json']],
  },
  token: {
    summary: 'make a token for development and tests',
    usage: 'herald token --sub USER [options]',
    about: `Prints a JWT signed with the configured HMAC secret (auth.hmacSecret or HERALD_AUTH_HMAC_SECRET,
from the same config file and environment as herald serve; never from the command line) or with a
private key file. Production tokens come from your application (docs/auth.md).`,
    options: [
      ['--sub ID', 'user id (the "sub" claim); required'],
      ['--subscribe PATTERN', 'channel or pattern.** the user may subscribe to (repeat; $sub = the user id)'],
      ['--publish PATTERN', '... may publish to'],
      ['--history PATTERN', '... may read the history of'],
      ['--presence PATTERN', '... may see the presence of'],
      ['--channel CHANNEL', 'a subscription token for this one channel instead of a connection token'],
      ['--info JSON', `the "info" claim (shown in presence), e.g. '{"name":"Ann"}'`],
      ['--ttl DURATION', 'lifetime, e.g. 30m, 1h, 7d (default 1h)'],
      ['--private-key FILE', 'sign with this PEM private key (RS256/ES256/EdDSA) instead of the HMAC secret'],
      ['--alg ALG', 'algorithm (default: HS256 with the secret, else from the key type)'],
      ['--kid KID', '"kid" header (to pick one of several configured public keys)'],
      ['-c, --config FILE', 'config file to read auth.hmacSecret, auth.issuer and auth.audience from'],
      HELP_OPTION,
    ],
    examples: [
      [`HERALD_AUTH_HMAC_SECRET=dev-secret herald token --sub 42 --subscribe 'chat.**' --publish chat.room1`],
      [`herald token --sub 42 --info '{"name":"Ann"}' --ttl 30m --config herald.yaml`],
      [`herald subscribe 'chat.**' --token "$(herald token --sub 42 --subscribe 'chat.**')"`],
    ],
  },
  version: {
    summary: "print herald's version",
    usage: 'herald version',
    options: [HELP_OPTION],
    examples: [['herald version']],
  },
  help: {
    summary: 'show help for herald or one of its commands',
    usage: 'herald help [command]',
    options: [],
    examples: [['herald help'], ['herald help subscribe']],
  },
} satisfies Record<string, CommandHelp>;

export type CommandName = keyof typeof COMMANDS;

export function isCommand(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

/** Commands whose output follows --json / the terminal (they get the OUTPUT_NOTE). */
const CLIENT_COMMANDS = new Set<CommandName>(['publish', 'subscribe', 'history', 'channels', 'presence', 'info']);

function columnsOf(rows: readonly (readonly [string, string?])[], indent: string): string {
  const width = Math.max(...rows.map(([a]) => a.length));
  return rows
    .map(([a, b]) => (b === undefined || b === '' ? `${indent}${a}` : `${indent}${a.padEnd(width)}   ${b}`))
    .join('\n');
}

/** Examples with their notes aligned as `# note`; a long command gets its note on the next line. */
function examplesText(examples: readonly (readonly [string, string?])[]): string {
  const noted = examples.filter(([, note]) => note !== undefined).map(([cmd]) => cmd.length);
  const width = Math.min(64, Math.max(0, ...noted));
  return examples
    .map(([cmd, note]) => {
      if (note === undefined) return `  ${cmd}`;
      return cmd.length <= width ? `  ${cmd.padEnd(width)}   # ${note}` : `  ${cmd}\n      # ${note}`;
    })
    .join('\n');
}

/** `herald <command> --help`. */
export function commandHelp(name: CommandName): string {
  const h: CommandHelp = COMMANDS[name];
  const parts = [`herald ${name}: ${h.summary}`, `Usage:\n  ${h.usage}`];
  if (h.about !== undefined) parts.push(h.about);
  if (h.options.length > 0) parts.push(`Options:\n${columnsOf(h.options, '  ')}`);
  parts.push(`Examples:\n${examplesText(h.examples)}`);
  if (CLIENT_COMMANDS.has(name)) parts.push(OUTPUT_NOTE);
  return parts.join('\n\n');
}

/** `herald help`. */
export function mainHelp(): string {
  const list = (Object.keys(COMMANDS) as CommandName[]).map((n) => [n, COMMANDS[n].summary] as const);
  return `herald ${VERSION}: real-time messaging server, and a client to try it

Usage:
  herald <command> [options]

Commands:
${columnsOf(list, '  ')}

Run "herald help <command>" or "herald <command> --help" for its options and examples.

Examples:
  herald serve                                   # start a server; it prints its URLs and API key
  herald subscribe 'chat.**'                     # in another terminal: watch every chat.* channel
  herald publish chat.room1 '{"text":"hello"}' --api-key <key>
  herald history chat.room1 --limit 10 --latest
  herald channels

Environment: HERALD_URL (default http://localhost:8080), HERALD_API_KEY and HERALD_TOKEN for the
client commands; HERALD_* variables configure serve (docs/configuration.md). docs/cli.md has more.`;
}
