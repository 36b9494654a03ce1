/**
 * What the client commands of the `herald` CLI share: errors with their exit codes, argument
 * parsing that reports mistakes as usage errors, terminal detection, human formatting, and the
 * one-line description of a network error.
 *
 * Exit codes: 0 ok, 1 server or network error, 2 usage error. Errors are one line on stderr.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkChannel } from '@herald/protocol';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** An error the CLI reports as one line on stderr, `herald <command>: <message>`, then exits with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

/** A mistake in the command line: exit code 2, with a pointer to the command's `--help`. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, EXIT_USAGE);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** What `parseCommandArgs` returns for these options. */
export type ParsedArgs<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>
>;

/**
 * `parseArgs` in strict mode, with its errors ("Unknown option '--x'. To specify a positional
 * argument ...") turned into short `UsageError`s.
 */
export function parseCommandArgs<O extends Options>(argv: string[], options: O): ParsedArgs<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(parseErrorMessage(err));
  }
}

/** A `parseArgs` error in a few words: "unknown option --x", "--url needs a value". */
export function parseErrorMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const message = e instanceof Error ? e.message : String(err);
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option !== undefined) return `unknown option ${option}`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) return `${option} needs a value`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const arg = /'([^']*)'/.exec(message)?.[1];
    return `unexpected argument${arg !== undefined ? ` "${arg}"` : ''}`;
  }
  return message;
}

/** Parses `--name N` as an integer in [min, max]; undefined when the option is absent. */
export function intOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/** Checks a channel argument; `subtree`: whether `prefix.**` is allowed. Explains `chat.*`. */
export function channelArgument(name: string, subtree: boolean): string {
  const check = checkChannel(name, { allowSubtree: subtree });
  if (check.ok) return name;
  let hint = '';
  if (subtree && name.includes('*')) hint = `; a pattern is prefix.**, e.g. ${name.replace(/\.?\*+$/, '')}.**`;
  else if (!subtree && name.endsWith('.**')) hint = '; this command takes an exact channel, not a pattern';
  throw new UsageError(`invalid channel "${name}": ${check.reason}${hint}`);
}

/** Whether `argv` asks for help (`-h`, `--help`) before any `--`. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * Whether a stream is a terminal. `HERALD_CLI_TTY=1` (or `0`) overrides it for both stdout and
 * stderr: the tests use it to see the terminal output without a pseudo-terminal. Not documented
 * for users.
 */
export function isTerminal(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  const forced = env['HERALD_CLI_TTY'];
  if (forced === '1') return true;
  if (forced === '0') return false;
  return stream.isTTY === true;
}

/** Human output unless `--json` is given or stdout is not a terminal (scripts get JSON lines). */
export function humanOutput(json: boolean | undefined): boolean {
  return json !== true && isTerminal(process.stdout);
}

/** The width of a terminal stream, or `fallback` when unknown (a pipe under HERALD_CLI_TTY). */
export function columns(stream: NodeJS.WriteStream, fallback = 100): number {
  return stream.columns !== undefined && stream.columns > 0 ? stream.columns : fallback;
}

/** One-line JSON of a value (`undefined` as `-`). */
export function compact(value: unknown): string {
  if (value === undefined) return '-';
  return JSON.stringify(value) ?? String(value);
}

/** Cuts `text` to at most `max` characters, ending in `…` when cut. */
export function truncate(text: string, max: number): string {
  if (max < 1) return '';
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** Local wall-clock time `HH:MM:SS.mmm`. */
export function clockTime(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** A duration in ms as `850 ms`, `4 s`, `2 min`. */
export function shortDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** Rows as left-aligned columns separated by two spaces (the last column is not padded). */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - [...cell].length)))
      .join('  ')
      .trimEnd(),
  );
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  EHOSTDOWN: 'host is down',
  ENETUNREACH: 'network unreachable',
  ENETDOWN: 'network is down',
  EADDRNOTAVAIL: 'address not available',
  EAI_AGAIN: 'name lookup failed (temporary DNS failure)',
  UND_ERR_SOCKET: 'the server closed the connection',
  EPROTO: 'TLS handshake failed (is the server plain http?)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed (is the server plain http?)',
  HPE_INVALID_CONSTANT: 'the answer is not HTTP (is it https, or not a Herald server?)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS certificate is self-signed and not trusted (NODE_EXTRA_CA_CERTS)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate chain is self-signed and not trusted (NODE_EXTRA_CA_CERTS)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate is not trusted (NODE_EXTRA_CA_CERTS)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS certificate is not trusted (NODE_EXTRA_CA_CERTS)',
  CERT_HAS_EXPIRED: 'TLS certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate is for another host name',
};

/**
 * What went wrong reaching a server, in a few words: the code of the error or of its `cause` (the
 * `TypeError: fetch failed` of undici wraps the socket error) or of the errors of an
 * `AggregateError` (a name with both an IPv6 and an IPv4 address tries both).
 */
export function describeNetworkError(err: unknown): string {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const { code, hostname } = e as NodeJS.ErrnoException & { hostname?: string };
    if (code === 'ENOTFOUND') return `unknown host${hostname !== undefined ? ` "${hostname}"` : ''}`;
    if (typeof code === 'string' && NETWORK_CODES[code] !== undefined) return NETWORK_CODES[code];
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no answer in time';
    if (e instanceof AggregateError && e.errors.length > 0) {
      e = e.errors[0];
      continue;
    }
    if (e.cause === undefined) break;
    e = e.cause;
  }
  const last = e instanceof Error ? e : err;
  const message = last instanceof Error ? last.message : String(last);
  const code = (last as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
}

/**
 * The status line of a long-running command on a terminal's stderr: one line rewritten in place
 * with `\r`, cut to the terminal's width so it never wraps. Lines printed meanwhile (`print`) go
 * above it. Off (every method a no-op but `print`) when stderr is not a terminal.
 */
export class StatusLine {
  private text = '';
  private shown = false;

  constructor(
    readonly enabled: boolean,
    private readonly err: NodeJS.WriteStream = process.stderr,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {}

  /** Sets the text and redraws it. */
  set(text: string): void {
    this.text = text;
    this.render();
  }

  render(): void {
    if (!this.enabled || this.text === '') return;
    this.err.write(`\r${truncate(this.text, columns(this.err, 100) - 1)}\x1b[K`);
    this.shown = true;
  }

  /** Erases the line (before printing, or at exit). */
  clear(): void {
    if (!this.enabled || !this.shown) return;
    this.err.write('\r\x1b[K');
    this.shown = false;
  }

  /** Writes a whole line to stdout (or stderr), keeping the status line below it. */
  print(line: string, to: 'out' | 'err' = 'out'): void {
    // A line to a piped stdout does not touch the terminal: the status line can stay.
    if (to === 'err' || isTerminal(this.out)) this.clear();
    (to === 'out' ? this.out : this.err).write(`${line}\n`);
  }
}
