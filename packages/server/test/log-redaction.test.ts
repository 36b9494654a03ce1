/**
 * What an operator sees in the logs: the real `herald serve`, in JSON and in pretty format at debug
 * level, given every kind of secret (API keys, HMAC secret, session secret, admin password, hook
 * key) and traffic that carries credentials (wrong and right API keys, bad and good tokens in query
 * strings, cookies, session ids, a failing hook). Its whole output must contain none of them, and
 * must contain the events that traffic causes (so that an empty log cannot pass). Also the pretty
 * format on its own: one line per event.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { freePort, until, withTimeout } from '@herald/test-support';
import { CLI, refusedUpgrade, WsClient } from '@herald/test-support/server';
import { createLogger } from '../src/logging.js';
import { sign } from './support/tokens.js';

const API_KEY = 'log-test-api-key-Q7w9e2r4t6y8';
const WRONG_KEY = 'wrong-api-key-Z1x3c5v7b9n0m2';
const HMAC_SECRET = 'log-test-hmac-secret-H4j6k8l0p2o4i6u8y0t2';
const WRONG_HMAC = 'not-the-hmac-secret-G5f7d9s1a3q5w7e9r1t3';
const SESSION_SECRET = 'log-test-session-secret-S8d6f4g2h0';
const ADMIN_PASSWORD = 'log-test-admin-pw-P3a5s7s9';
const ADMIN_SECRET = 'log-test-admin-secret-A2d4m6i8n0';
const HOOK_KEY = 'log-test-hook-key-K9o7o5k3s1';
const COOKIE_VALUE = 'log-test-cookie-value-C1o3o5k7i9e';
const FORGED_SESSION = 'n1-1.log-test-forged-session-F0r6e4d2';

/** A `herald serve` child process and everything it wrote (stdout and stderr). */
async function serve(format: 'json' | 'pretty', env: Record<string, string>) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
  const proc = spawn(
    process.execPath,
    [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--log-level', 'debug', '--log-format', format, '--no-demos'],
    { env: { ...process.env, NO_COLOR: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      proc.stdout.on('data', () => {
        const m = /ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      void closed.then((code) => reject(new Error(`herald exited with ${code} before listening:\n${out}`)));
    }),
    15_000,
    'herald serve to print its port',
  );
  return {
    base: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/ws`,
    output: () => out,
    /** Waits until the output contains `text` (a log line written by the server). */
    logged: (text: string, what: string) => until(() => out.includes(text), `${what} in the log:\n${out}`, 5000),
    stop: async () => {
      proc.kill('SIGTERM');
      return withTimeout(closed, 15_000, 'herald serve to exit after SIGTERM');
    },
  };
}

/** Drives the credential-bearing traffic; returns the secrets that appeared in it. */
async function traffic(h: Awaited<ReturnType<typeof serve>>): Promise<string[]> {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const goodToken = await sign({ sub: 'user-42', exp }, HMAC_SECRET);
  const badToken = await sign({ sub: 'user-43', exp }, WRONG_HMAC);

  // Server API: a wrong key (refused and logged), then the right one; keys in the header and the query.
  for (const key of [WRONG_KEY, API_KEY]) {
    const res = await fetch(`${h.base}/api/publish?apikey=${key}`, {
      method: 'POST',
      headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json', Cookie: `sid=${COOKIE_VALUE}` },
      body: JSON.stringify({ channel: 'logs.a', data: { token: goodToken } }),
    });
    expect(res.status).toBe(key === API_KEY ? 200 : 401);
    await res.text();
  }
  await h.logged('api: unauthorized', 'the refused API key');

  // SSE and WebSocket with a bad token in the query string (and a cookie): refused and logged.
  const sse = await fetch(`${h.base}/sse?channel=logs.a&token=${badToken}`, {
    headers: { Cookie: `herald_admin=${COOKIE_VALUE}; sid=${COOKIE_VALUE}` },
    signal: AbortSignal.timeout(5000),
  });
  expect(sse.status).toBe(401);
  await sse.body?.cancel();
  const refused = await refusedUpgrade(`${h.ws}?token=${badToken}`, { headers: { Cookie: `sid=${COOKIE_VALUE}` } });
  expect(refused.status).toBe(401);
  await until(
    () => h.output().split('connection refused').length > 2,
    `the two refused connections in the log:\n${h.output()}`,
  );

  // A good token in the query string, then an rpc that the (unreachable) hook fails.
  const ws = await WsClient.connect(`${h.ws}?token=${goodToken}`, { headers: { Cookie: `sid=${COOKIE_VALUE}` } });
  const rpc = await ws.request({ cmd: 'rpc', method: 'echo', data: { token: goodToken, apiKey: API_KEY } });
  expect(rpc['error']?.code).toMatch(/^HERALD_ERR_HOOK_/);
  ws.sendRaw(`{"id":99,"cmd":"refresh","token":"${badToken}"}`);
  await ws.waitFor((f) => f['id'] === 99, 'the answer to the refresh with a bad token');
  await h.logged('backend hook failed', 'the failed hook');
  await ws.close();

  // A long-poll session: its id (signed with the session secret) on /send, and a forged one.
  const poll = await fetch(`${h.base}/poll?channel=logs.a&timeout=0&token=${goodToken}`);
  expect(poll.status).toBe(200);
  const session = ((await poll.json()) as { session: string }).session;
  const sent = await fetch(`${h.base}/send?session=${session}`, {
    method: 'POST',
    headers: { 'X-Herald-Session': session, Cookie: `sid=${COOKIE_VALUE}` },
    body: '{"id":1,"cmd":"publish","channel":"logs.a","data":1}\n',
  });
  expect(sent.status).toBe(200);
  await sent.text();
  const forged = await fetch(`${h.base}/send?session=${FORGED_SESSION}`, {
    method: 'POST',
    headers: { 'X-Herald-Session': FORGED_SESSION },
    body: '{"id":1,"cmd":"publish","channel":"logs.a","data":1}\n',
  });
  expect(forged.status).toBe(404);
  await forged.text();
  await h.logged('send: invalid session id', 'the forged session id');

  // The admin login, with a wrong password and the right one (whatever the admin page answers).
  for (const password of ['wrong-admin-password', ADMIN_PASSWORD]) {
    const res = await fetch(`${h.base}/admin/login?password=${password}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: `herald_admin=${COOKIE_VALUE}` },
      body: `password=${encodeURIComponent(password)}`,
      redirect: 'manual',
    });
    await res.text();
  }

  const signature = session.slice(session.lastIndexOf('.') + 1);
  return [goodToken, badToken, ...[goodToken, badToken].flatMap((t) => t.split('.')), signature];
}

describe('herald serve logs no secrets', () => {
  for (const format of ['json', 'pretty'] as const) {
    it(`in ${format} format, at debug level`, async () => {
      const env = {
        HERALD_API_KEYS: API_KEY,
        HERALD_AUTH_HMAC_SECRET: HMAC_SECRET,
        HERALD_HTTP_SESSION_SECRET: SESSION_SECRET,
        HERALD_ADMIN_PASSWORD: ADMIN_PASSWORD,
        HERALD_ADMIN_SECRET: ADMIN_SECRET,
        HERALD_AUTH_HOOKS_URL: `http://127.0.0.1:${await freePort()}/hooks`,
        HERALD_AUTH_HOOKS_API_KEY: HOOK_KEY,
        HERALD_AUTH_HOOKS_RPC: 'true',
        HERALD_AUTH_HOOKS_TIMEOUT: '2s',
      };
      const h = await serve(format, env);
      let seen: string[];
      try {
        seen = await traffic(h);
      } finally {
        expect(await h.stop()).toBe(0);
      }
      const out = h.output();

      // The log is there, in the format asked for, with the events the traffic caused.
      const events = ['listening', 'api: unauthorized', 'connection refused', 'backend hook failed'];
      events.push('send: invalid session id', 'shutting down', 'stopped');
      const logLines = out.split('\n').filter((l) => (format === 'json' ? l.startsWith('{') : /^\[\d\d:/.test(l)));
      for (const event of events) {
        const line = logLines.find((l) => (format === 'json' ? JSON.parse(l).msg === event : l.includes(`: ${event}`)));
        expect(line, `a "${event}" line in:\n${out}`).toBeDefined();
      }
      if (format === 'json') {
        for (const l of logLines) expect(() => JSON.parse(l) as unknown).not.toThrow();
      } else {
        expect(out).not.toMatch(/^\{"level"/m);
        expect(logLines.find((l) => l.includes('INFO: api: unauthorized'))).toMatch(
          /"code":"HERALD_ERR_API_UNAUTHORIZED"/,
        );
      }

      // ... and no secret anywhere in stdout or stderr.
      const secrets = [API_KEY, WRONG_KEY, HMAC_SECRET, SESSION_SECRET, ADMIN_PASSWORD, ADMIN_SECRET, HOOK_KEY];
      secrets.push(COOKIE_VALUE, FORGED_SESSION.split('.')[1]!, ...seen.filter((s) => s.length > 8));
      for (const secret of secrets) {
        expect(out, `the output contains ${secret.slice(0, 12)}...`).not.toContain(secret);
      }
    }, 60_000);
  }
});

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

describe('the pretty log format', () => {
  it('writes one line per event: time, level, message, then the fields; secrets redacted', () => {
    const capture = new Capture();
    const log = createLogger('debug', { format: 'pretty', destination: capture });
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl';
    log.info({ port: 8080, engine: 'memory' }, 'listening');
    log.warn({ url: `/sse?channel=a&token=${jwt}`, apiKey: 'plain-api-key-value' }, 'two\nlines');
    log.error({ err: new Error(`bad token ${jwt}\nsecond line`) }, 'failed');
    log.child({ client: 'n1-7', transport: 'websocket' }).debug({ code: 3001 }, 'disconnect');
    log.trace('not at debug level');
    log.info('no fields');

    expect(capture.lines).toHaveLength(5);
    for (const line of capture.lines) expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (DEBUG|INFO|WARN|ERROR): /);
    const [listening, warned, failed, disconnect, plain] = capture.lines;
    expect(listening).toMatch(/INFO: listening \{"port":8080,"engine":"memory"\}$/);
    expect(warned).toContain('WARN: two lines {"url":"/sse?channel=a&token=[redacted]","apiKey":"[redacted]"}');
    expect(failed).toContain('ERROR: failed {"err":"Error: bad token [redacted-jwt]');
    expect(failed).toContain('log-redaction.test.ts');
    expect(disconnect).toContain('DEBUG: disconnect {"client":"n1-7","transport":"websocket","code":3001}');
    expect(plain).toMatch(/INFO: no fields$/);
    expect(capture.text).not.toContain('herald'); // the svc, pid and hostname fields are left out
    expect(capture.text).not.toContain(jwt.split('.')[1]);
    expect(capture.text).not.toContain('plain-api-key-value');
    expect(capture.text).not.toContain('\u001b['); // no colours: not a terminal
  });

  it('auto: JSON lines when the destination is not a terminal, coloured pretty lines when it is', () => {
    const pipe = new Capture();
    createLogger('info', { format: 'auto', destination: pipe }).info({ n: 1 }, 'hello');
    expect(JSON.parse(pipe.lines[0]!)).toMatchObject({ msg: 'hello', n: 1, svc: 'herald' });

    const tty = new Capture();
    tty.isTTY = true;
    const saved = process.env['NO_COLOR'];
    delete process.env['NO_COLOR'];
    try {
      createLogger('info', { destination: tty }).info({ n: 1 }, 'hello');
    } finally {
      if (saved !== undefined) process.env['NO_COLOR'] = saved;
    }
    expect(tty.lines).toHaveLength(1);
    expect(tty.text).toContain('\u001b[');
    expect(tty.text.replaceAll('\u001b', '').replace(/\[\d+m/g, '')).toMatch(/^\[[\d:.]+\] INFO: hello \{"n":1\}\n$/);

    const json = new Capture();
    json.isTTY = true;
    createLogger('info', { format: 'json', destination: json }).info('hello');
    expect(JSON.parse(json.lines[0]!)).toMatchObject({ msg: 'hello' });
  });
});
