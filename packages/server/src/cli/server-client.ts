/**
 * How the client commands of the `herald` CLI reach a server: its base URL (`--url`, `HERALD_URL`),
 * the API key (`--api-key`, `HERALD_API_KEY`) and `POST /api/<method>` with errors turned into one
 * line each. Uses node:http rather than fetch, whose errors say only "fetch failed" and which
 * refuses some ports (6000, 6665-6669, ...) that a server may well listen on.
 */
import http from 'node:http';
import https from 'node:https';
import { CliError, UsageError, describeNetworkError, shortDuration } from './output.js';

export const DEFAULT_URL = 'http://localhost:8080';
const TIMEOUT_MS = 15_000;

export interface Target {
  /** `http(s)://host:port[/prefix]`, without a trailing slash. */
  readonly base: string;
  /** Whether it came from `--url` or `HERALD_URL` (else it is the default, worth a hint on failure). */
  readonly given: boolean;
}

/**
 * The server's base URL from `--url`, else `HERALD_URL`, else http://localhost:8080. Takes
 * `localhost:8080` (no scheme: http), and a WebSocket URL as the banner prints it
 * (`ws://localhost:8080/ws`).
 */
export function resolveTarget(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Target {
  const given = flag ?? (env['HERALD_URL'] !== '' ? env['HERALD_URL'] : undefined);
  let raw = (given ?? DEFAULT_URL).trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) raw = `http://${raw}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url: not a URL: "${given ?? raw}"`);
  }
  const scheme = { 'http:': 'http:', 'https:': 'https:', 'ws:': 'http:', 'wss:': 'https:' }[url.protocol];
  if (scheme === undefined) throw new UsageError(`--url must be http(s)://host:port, got "${given ?? raw}"`);
  const path = url.pathname.replace(/\/+$/, '').replace(/\/ws$/, '');
  return { base: `${scheme}//${url.host}${path}`, given: given !== undefined };
}

/** `--api-key`, else `HERALD_API_KEY`; a usage error when there is neither. */
export function resolveApiKey(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const key = flag ?? env['HERALD_API_KEY'];
  if (key === undefined || key === '') {
    throw new UsageError(
      'needs the server API key: give --api-key KEY or set HERALD_API_KEY; herald serve prints it at start',
    );
  }
  return key;
}

/** "cannot reach http://…: connection refused", with a hint when the URL is only the default. */
export function unreachable(target: Target, err: unknown): string {
  const hint = target.given ? '' : ' (the default URL: is `herald serve` running? --url or HERALD_URL for another)';
  return `cannot reach ${target.base}: ${describeNetworkError(err)}${hint}`;
}

/**
 * `POST /api/<method>` with a JSON body. Resolves with the reply's text and its parsed value;
 * rejects with a `CliError` (exit code 1) that says in one line what failed.
 */
export async function callApi(
  target: Target,
  key: string,
  method: string,
  body: unknown,
): Promise<{ text: string; value: unknown }> {
  const url = `${target.base}/api/${method}`;
  let reply: { status: number; text: string };
  try {
    reply = await post(url, key, JSON.stringify(body));
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') {
      throw new CliError(`no answer from ${target.base} within ${shortDuration(TIMEOUT_MS)}`);
    }
    throw new CliError(unreachable(target, err));
  }
  let value: unknown;
  try {
    value = JSON.parse(reply.text);
  } catch {
    throw new CliError(`HTTP ${reply.status} from ${url}, not a JSON answer: is it a Herald server?`);
  }
  if (reply.status >= 200 && reply.status < 300) return { text: reply.text, value };
  const error = (value as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (typeof error?.code !== 'string') {
    throw new CliError(`HTTP ${reply.status} from ${url}: is it a Herald server?`);
  }
  const message = typeof error.message === 'string' ? error.message : '';
  const hint =
    error.code === 'HERALD_ERR_API_UNAUTHORIZED'
      ? 'the server refused the API key: check --api-key or HERALD_API_KEY'
      : message;
  throw new CliError(`${hint} (${error.code}, HTTP ${reply.status})`);
}

function post(url: string, key: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.request(url, {
      method: 'POST',
      headers: {
        Authorization: `apikey ${key}`,
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
        'User-Agent': 'herald-cli',
      },
    });
    req.setTimeout(TIMEOUT_MS, () => {
      const err = new Error('timed out');
      err.name = 'TimeoutError';
      req.destroy(err);
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end(body);
  });
}
