/**
 * `herald publish`, `history`, `channels`, `presence`, `info` against a real server: the built CLI
 * as a child process, its text on a terminal (HERALD_CLI_TTY=1), its JSON when piped or with
 * --json, and its one-line errors with exit codes 1 (server, network) and 2 (usage).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, WsClient, api, startServer, type TestServer } from '@herald/test-support/server';
import { freePort } from '@herald/test-support';
import { assertBuilt, runHerald, type CliOptions } from './support/cli.js';
import { SECRET, sign } from './support/tokens.js';

let srv: TestServer;
let env: Record<string, string>;
const clients: WsClient[] = [];

beforeAll(async () => {
  assertBuilt();
  srv = await startServer({
    auth: { hmacSecret: SECRET },
    namespaces: { game: { presence: true }, nohist: { historySize: 0 } },
  });
  env = { HERALD_URL: srv.url, HERALD_API_KEY: API_KEY };
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await srv.close();
});

const herald = (args: string[], opts: CliOptions = {}) => runHerald(args, { ...opts, env: { ...env, ...opts.env } });
const tty = { tty: true };

/** Asserts a failure: nothing on stdout, one line on stderr, the exit code. */
function failed(r: { code: number | null; stdout: string; stderr: string }, code: number, line: string | RegExp): void {
  expect(r.stdout).toBe('');
  expect(r.stderr.endsWith('\n') && !r.stderr.slice(0, -1).includes('\n'), r.stderr).toBe(true);
  if (typeof line === 'string') expect(r.stderr).toBe(`${line}\n`);
  else expect(r.stderr).toMatch(line);
  expect(r.code).toBe(code);
}

describe('herald publish', () => {
  it('says where it published on a terminal, prints the JSON reply when piped or with --json', async () => {
    const human = await herald(['publish', 'pub.a', '{"text":"hello"}'], tty);
    expect(human.stderr).toBe('');
    expect(human.stdout).toMatch(/^published to pub\.a at offset 1 \(epoch [\w-]+\)\n$/);
    expect(human.code).toBe(0);

    const piped = await herald(['publish', 'pub.a', '2']);
    expect(piped.code).toBe(0);
    expect(JSON.parse(piped.stdout)).toMatchObject({ channel: 'pub.a', offset: 2, duplicate: false });

    const forced = await herald(['publish', 'pub.a', '"three"', '--json'], tty);
    expect(JSON.parse(forced.stdout)).toMatchObject({ channel: 'pub.a', offset: 3 });

    const h = await api(srv.url, 'history', { channel: 'pub.a' });
    expect(h.body.publications.map((p: { data: unknown }) => p.data)).toEqual([{ text: 'hello' }, 2, 'three']);
  });

  it('reads the data from stdin with -, and tells a repeated idempotency key', async () => {
    const r = await herald(['publish', 'pub.b', '-', '--idempotency-key', 'k1'], { input: '{"n":1}\n' });
    expect(JSON.parse(r.stdout)).toMatchObject({ channel: 'pub.b', offset: 1, duplicate: false });
    const again = await herald(['publish', 'pub.b', '{"n":1}', '--idempotency-key', 'k1'], tty);
    expect(again.stdout).toMatch(/^already published to pub\.b at offset 1 /);
    expect(again.code).toBe(0);
  });

  it('usage errors: one line, exit 2, nothing sent', async () => {
    failed(
      await herald(['publish', 'pub.c', 'hello']),
      2,
      `herald publish: <data> is not JSON: hello; a text needs JSON quotes: '"hello"' (herald publish --help for usage)`,
    );
    failed(await herald(['publish', 'pub.c']), 2, /^herald publish: give a channel and the data/);
    failed(await herald(['publish', 'pub.**', '1']), 2, /invalid channel "pub\.\*\*": .*exact channel/);
    failed(await herald(['publish', 'pub.c', '1', '--url']), 2, /^herald publish: --url needs a value/);
    failed(await herald(['publish', 'pub.c', '1', '--url', 'ftp://x']), 2, /--url must be http/);
    failed(
      await runHerald(['publish', 'pub.c', '1', '--url', srv.url]),
      2,
      /^herald publish: needs the server API key: give --api-key KEY or set HERALD_API_KEY/,
    );
    expect((await api(srv.url, 'history', { channel: 'pub.c' })).body.offset).toBe(0);
  });

  it('a wrong URL: "cannot reach <url>: connection refused", exit 1', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    failed(
      await herald(['publish', 'pub.d', '1', '--url', url]),
      1,
      `herald publish: cannot reach ${url}: connection refused`,
    );
    failed(
      await herald(['publish', 'pub.d', '1'], { env: { HERALD_URL: `${url}/` } }),
      1,
      `herald publish: cannot reach ${url}: connection refused`,
    );
    failed(
      await herald(['publish', 'pub.d', '1', '--url', 'http://no-such-host.invalid:8080']),
      1,
      'herald publish: cannot reach http://no-such-host.invalid:8080: unknown host "no-such-host.invalid"',
    );
  });

  it('takes the URL without a scheme, or as the WebSocket URL the banner prints', async () => {
    for (const url of [srv.url.replace('http://', ''), `${srv.wsUrl}`]) {
      const r = await herald(['publish', 'pub.e', '1', '--url', url]);
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it('errors of the server: its message and code in one line, exit 1', async () => {
    failed(
      await herald(['publish', 'pub.f', '1', '--api-key', 'wrong-key-0123456789']),
      1,
      'herald publish: the server refused the API key: check --api-key or HERALD_API_KEY (HERALD_ERR_API_UNAUTHORIZED, HTTP 401)',
    );
    const big = JSON.stringify('x'.repeat(70_000));
    failed(
      await herald(['publish', 'pub.f', big]),
      1,
      /^herald publish: data is \d+ bytes; .*\(HERALD_ERR_MESSAGE_TOO_LARGE, HTTP 413\)\n$/,
    );
  });
});

describe('herald history', () => {
  beforeAll(async () => {
    for (let i = 1; i <= 5; i++) await api(srv.url, 'publish', { channel: 'hist.a', data: { i } });
    await api(srv.url, 'publish', { channel: 'hist.b', data: 'b' });
  });

  it('prints the publications oldest first, and the position', async () => {
    const r = await herald(['history', 'hist.a'], tty);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^hist\.a: 5 publications; position [\w-]+:5$/);
    expect(lines.slice(1)).toEqual([1, 2, 3, 4, 5].map((i) => `hist.a  #${i}  {"i":${i}}`));
  });

  it('--limit N gives the oldest N, --latest the newest N (still in order)', async () => {
    const oldest = await herald(['history', 'hist.a', '--limit', '2'], tty);
    expect(oldest.stdout).toContain('2 publications (the oldest; --latest for the newest)');
    expect(oldest.stdout).toContain('hist.a  #1  {"i":1}\nhist.a  #2  {"i":2}\n');

    const latest = await herald(['history', 'hist.a', '--limit', '2', '--latest'], tty);
    expect(latest.stdout).toContain('2 publications (the newest)');
    expect(latest.stdout).toContain('hist.a  #4  {"i":4}\nhist.a  #5  {"i":5}\n');

    const json = JSON.parse((await herald(['history', 'hist.a', '--limit', '2', '--latest'])).stdout);
    expect(json.publications.map((p: { offset: number }) => p.offset)).toEqual([4, 5]);
    expect(json).toMatchObject({ stream: 'hist.a', offset: 5 });
  });

  it('--json (or a pipe) prints the server reply; --since resumes from a position', async () => {
    const piped = await herald(['history', 'hist.a']);
    const h = JSON.parse(piped.stdout);
    expect(h.publications).toHaveLength(5);
    const forced = await herald(['history', 'hist.a', '--json'], tty);
    expect(JSON.parse(forced.stdout)).toEqual(h);
    const since = await herald(['history', 'hist.a', '--since', `${h.epoch}:3`], tty);
    expect(since.stdout.trimEnd().split('\n').slice(1)).toEqual(['hist.a  #4  {"i":4}', 'hist.a  #5  {"i":5}']);
  });

  it('a subtree shows each channel; errors are one line', async () => {
    const r = await herald(['history', 'hist.**'], tty);
    expect(r.stdout).toMatch(/^hist\.\*\*: 6 publications;/);
    expect(r.stdout).toContain('hist.b  #6  "b"');
    failed(
      await herald(['history', 'hist.*']),
      2,
      /invalid channel "hist\.\*": .*; a pattern is prefix\.\*\*, e\.g\. hist\.\*\* \(herald history --help/,
    );
    failed(await herald(['history', 'hist.a', '--limit', 'x']), 2, /--limit must be an integer/);
    failed(
      await herald(['history', 'nohist.a']),
      1,
      /^herald history: namespace "nohist" keeps no history \(HERALD_ERR_HISTORY_DISABLED, HTTP 400\)\n$/,
    );
  });
});

describe('herald channels, presence, info', () => {
  beforeAll(async () => {
    const ann = await sign({ sub: 'ann', info: { name: 'Ann' }, exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);
    clients.push(await WsClient.subscribed(`${srv.wsUrl}?token=${ann}`, 'game.7'));
    clients.push(await WsClient.subscribed(srv.wsUrl, 'game.7', 'chat.room1'));
  });

  it('channels: a table on a terminal, the reply when piped', async () => {
    const r = await herald(['channels'], tty);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^CHANNEL +SUBSCRIBERS +PRESENCE\n/);
    expect(r.stdout).toMatch(/^chat\.room1 +1 +-$/m);
    expect(r.stdout).toMatch(/^game\.7 +2 +2 clients, 2 users$/m);

    const json = JSON.parse((await herald(['channels', 'game.*'])).stdout);
    expect(json).toEqual({ channels: [{ stream: 'game.7', subscribers: 2, presence: { clients: 2, users: 2 } }] });

    const none = await herald(['channels', 'chat'], tty);
    expect(none.stdout).toBe(
      `no channels matching "chat" with subscribers on this node (for the channels under it: herald channels 'chat.*')\n`,
    );
  });

  it('presence: who is there, or the counts', async () => {
    const r = await herald(['presence', 'game.7'], tty);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('game.7: 2 clients, 2 users');
    expect(lines[1]).toMatch(/^CLIENT +USER +INFO$/);
    expect(lines).toHaveLength(4);
    expect(r.stdout).toMatch(/^\S+ +\(anonymous\) +-$/m);
    expect(r.stdout).toMatch(/^\S+ +ann +{"name":"Ann"}$/m);

    const json = JSON.parse((await herald(['presence', 'game.7'])).stdout);
    expect(json.presence).toHaveLength(2);
    expect((await herald(['presence', 'game.7', '--count'], tty)).stdout).toBe('game.7: 2 clients, 2 users\n');
    expect(JSON.parse((await herald(['presence', 'game.7', '--count'])).stdout)).toEqual({
      channel: 'game.7',
      clients: 2,
      users: 2,
    });
    failed(
      await herald(['presence', 'chat.room1']),
      1,
      'herald presence: namespace "chat" keeps no presence (HERALD_ERR_PRESENCE_DISABLED, HTTP 400)',
    );
  });

  it('info: the node and its counters', async () => {
    const r = await herald(['info'], tty);
    expect(r.stdout).toMatch(new RegExp(`^node \\S+ at ${srv.url.replace(/\./g, '\\.')}\\n`));
    expect(r.stdout).toMatch(/^ {2}engine +memory$/m);
    const json = JSON.parse((await herald(['info'])).stdout);
    expect(json.nodes[0]).toMatchObject({ engine: 'memory' });
    expect(JSON.parse((await herald(['info', '--json'], tty)).stdout)).toHaveProperty('nodes');
  });
});
