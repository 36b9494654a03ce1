/**
 * `herald subscribe` against a real server, and against no server: the built CLI as a child
 * process. JSON lines when piped, a line per publication and a status line on a terminal
 * (HERALD_CLI_TTY=1), one clear line per failed try (sparingly) and resumption after a drop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, api, startServer, type TestServer } from '@herald/test-support/server';
import { freePort, until } from '@herald/test-support';
import { CliProcess, assertBuilt, type CliOptions } from './support/cli.js';
import { SECRET, sign } from './support/tokens.js';

let srv: TestServer;
let env: Record<string, string>;
const running: CliProcess[] = [];

beforeAll(async () => {
  assertBuilt();
  srv = await startServer({
    auth: { hmacSecret: SECRET },
    namespaces: { game: { presence: true }, priv: { anonymousSubscribe: false } },
  });
  env = { HERALD_URL: srv.url, HERALD_API_KEY: API_KEY };
});
afterAll(async () => {
  for (const p of running) p.kill();
  await srv.close();
});

function subscribe(args: string[], opts: CliOptions = {}): CliProcess {
  const p = new CliProcess(['subscribe', ...args], { ...opts, env: { ...env, ...opts.env } });
  running.push(p);
  return p;
}

/** Waits until the server has a subscriber on `stream` (the CLI's subscription is live). */
async function subscribed(stream: string, p: CliProcess): Promise<void> {
  await until(async () => {
    const r = await api(srv.url, 'channels', { pattern: stream });
    return (r.body.channels as { subscribers: number }[]).some((c) => c.subscribers > 0);
  }, `a subscriber on ${stream}\n${p.dump()}`);
}

const publish = (channel: string, data: unknown) => api(srv.url, 'publish', { channel, data });

describe('herald subscribe', () => {
  it('--json prints each publication as a JSON line; --count N exits 0 after N', async () => {
    const p = subscribe(['sub.a', '--json', '--count', '1'], { tty: true });
    await subscribed('sub.a', p);
    await publish('sub.a', { text: 'hi' });
    const r = await p.finished();
    expect(r.stdout).toBe('{"channel":"sub.a","offset":1,"data":{"text":"hi"}}\n');
    expect(r.code).toBe(0);
  });

  it('piped: JSON lines by default, nothing on stderr while all is well', async () => {
    await publish('sub.c', 1);
    const p = subscribe(['sub.**', '--backlog', '5', '--count', '3']);
    await subscribed('sub.**', p);
    await publish('sub.c', 2);
    const r = await p.finished();
    expect(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { channel: 'sub.a', offset: 1, data: { text: 'hi' } },
      { channel: 'sub.c', offset: 2, data: 1 },
      { channel: 'sub.c', offset: 3, data: 2 },
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('on a terminal: a readable line per publication, and a status line with the count on stderr', async () => {
    await publish('sub.b', { n: 1 });
    const p = subscribe(['sub.b', '--backlog', '1', '--count', '2'], { tty: true });
    await subscribed('sub.b', p);
    await p.waitFor((c) => c.stderr.includes('· received 1 ·'), 'the status line to count the backlog');
    await publish('sub.b', { n: 2 });
    const r = await p.finished();
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('history       sub.b  #1  {"n":1}');
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} {2}sub\.b {2}#2 {2}{"n":2}$/);
    expect(lines).toHaveLength(2);
    // The status line is rewritten in place (\r ... erase to the end of line), never a line of its own.
    expect(r.stderr).toContain(`\rsub.b at ${srv.url.replace('http://', '')} · received 1 · `);
    expect(r.stderr).not.toContain('\n');
    expect(r.stderr.endsWith('\r\x1b[K')).toBe(true);
  });

  it('a server that cannot be reached: one clear line per try, sparingly, on stderr; it keeps trying', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const p = subscribe(['sub.x', '--url', url]);
    await p.waitFor((c) => c.stderr.split('\n').length > 2, 'two failed tries');
    const lines = p.stderr.trimEnd().split('\n');
    const line = (n: number): RegExp =>
      new RegExp(
        `^herald subscribe: cannot reach ${url.replace(/\./g, '\\.')}: connection refused; retrying in \\d+ ms \\(attempt ${n}\\)$`,
      );
    expect(lines[0]).toMatch(line(1));
    expect(lines[1]).toMatch(line(2));
    expect(p.proc.exitCode).toBe(null);
    expect(p.stdout).toBe('');
    p.kill('SIGTERM');
    expect((await p.finished()).signal).toBe('SIGTERM');
  });

  it('on a terminal, the tries rewrite one status line; Ctrl-C ends it', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const p = subscribe(['sub.x', '--url', url], { tty: true });
    await p.waitFor((c) => c.stderr.includes('(try 3)'), 'a third try');
    expect(p.stderr).toContain(`\rcannot reach ${url}: connection refused · try 2 in `);
    expect(p.stderr).not.toContain('\n');
    p.kill('SIGINT');
    const r = await p.finished();
    expect(r.signal).toBe('SIGINT');
    expect(r.stderr.endsWith('\r\x1b[K')).toBe(true);
  });

  it('after the server drops the connection, it reconnects and resumes where it was', async () => {
    const p = subscribe(['game.r', '--count', '2']);
    await subscribed('game.r', p);
    await publish('game.r', 'one');
    await p.waitFor((c) => c.stdout.includes('"one"'), 'the first publication');
    const who = await api(srv.url, 'presence', { channel: 'game.r' });
    const client = (who.body.presence as { client: string }[])[0]?.client;
    expect((await api(srv.url, 'disconnect', { client, reconnect: true })).body).toEqual({ disconnected: 1 });
    await publish('game.r', 'two');
    const r = await p.finished();
    expect(r.stdout).toBe(
      '{"channel":"game.r","offset":1,"data":"one"}\n{"channel":"game.r","offset":2,"data":"two"}\n',
    );
    expect(r.stderr).toMatch(
      /^herald subscribe: disconnected by the server: force_reconnect; retrying in \d+ ms \(attempt 1\)\n/,
    );
    expect(r.stderr).toContain(`herald subscribe: subscribed to game.r at ${srv.wsUrl}\n`);
    expect(r.code).toBe(0);
  });

  it('a refused subscription is the end: one line, exit 1; --token gets in', async () => {
    const p = subscribe(['priv.a']);
    const r = await p.finished();
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'herald subscribe: namespace "priv" does not allow anonymous subscribers: connect with a token (HERALD_ERR_AUTH_TOKEN_REQUIRED); give a token with --token or HERALD_TOKEN\n',
    );

    const bad = await subscribe(['priv.a', '--token', 'not-a-jwt']).finished();
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^herald subscribe: .*\(HERALD_ERR_AUTH_TOKEN_MALFORMED, HTTP 401\); give a token with --token or HERALD_TOKEN\n$/,
    );

    const token = await sign(
      { sub: '42', channels: { subscribe: ['priv.**'] }, exp: Math.floor(Date.now() / 1000) + 600 },
      SECRET,
    );
    const ok = subscribe(['priv.a', '--count', '1'], { env: { HERALD_TOKEN: token } });
    await subscribed('priv.a', ok);
    await publish('priv.a', 7);
    const got = await ok.finished();
    expect(got.stdout).toBe('{"channel":"priv.a","offset":1,"data":7}\n');
    expect(got.code).toBe(0);
  });

  it('usage errors: exit 2, with a hint for a wildcard', async () => {
    const r = await subscribe(['chat.*']).finished();
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'herald subscribe: invalid channel "chat.*": segment "*" has a character outside [A-Za-z0-9_@~=+:-]; a pattern is prefix.**, e.g. chat.** (herald subscribe --help for usage)\n',
    );
    expect((await subscribe(['chat.a', '--count', '0']).finished()).code).toBe(2);
    expect((await subscribe([]).finished()).code).toBe(2);
  });
});
