/**
 * Credentials never reach the logs: tokens and API keys in query strings, headers, frames and error
 * messages are scrubbed from every line, at the most verbose level. Checked on the logger alone and
 * on a running server whose log output is captured through a destination stream.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, scrubSecrets } from '../src/logging.js';
import { withTimeout } from '@herald/test-support';
import { API_KEY, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { SECRET, sign } from './support/tokens.js';

class Capture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(
      ...chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== ''),
    );
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

describe('scrubSecrets', () => {
  it('removes JWTs, credential query parameters and Authorization values, and keeps the rest', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl';
    const line = JSON.stringify({
      msg: `GET /sse?channel=chat.room1&token=${jwt}&cursor=e:1`,
      url: '/ws?access_token=abc.def&api_key=K3y&x=1',
      header: 'apikey my-api-key-0123456789',
      auth: 'Bearer opaque-token-value',
      other: `token is ${jwt}`,
    });
    const out = scrubSecrets(line);
    for (const secret of [jwt, 'abc.def', 'K3y', 'my-api-key-0123456789', 'opaque-token-value']) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain('channel=chat.room1');
    expect(out).toContain('cursor=e:1');
    expect(out).toContain('x=1');
    expect(() => JSON.parse(out) as unknown).not.toThrow();
  });
});

describe('the logger', () => {
  it('redacts credential fields and scrubs credentials in any other field or message', () => {
    const capture = new Capture();
    const log = createLogger('trace', { destination: capture });
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl';
    log.info({ token: 'plain-token-value', apiKey: 'plain-api-key-value' }, 'fields');
    log.info({ req: { headers: { authorization: 'apikey header-key-value', cookie: 'sid=cookie-value' } } }, 'nested');
    log.warn({ url: `/poll?channel=a&token=${jwt}` }, 'url');
    log.error({ err: new Error(`bad token ${jwt}`) }, `failed for ${jwt}`);
    log.child({ subscriptionToken: jwt }).debug('child');
    expect(capture.lines).toHaveLength(5);
    for (const secret of ['plain-token-value', 'plain-api-key-value', 'header-key-value', 'cookie-value', jwt]) {
      expect(capture.text).not.toContain(secret);
    }
    expect(capture.text).toContain('channel=a');
  });
});

describe('a running server logs no credentials', () => {
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  it('tokens in query strings and frames, API keys in headers, at trace level', async () => {
    const capture = new Capture();
    srv = await startServer(
      { logLevel: 'trace', auth: { hmacSecret: SECRET } },
      { logger: createLogger('trace', { destination: capture }) },
    );
    const token = await sign({ sub: '42', exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);
    const wrongKey = 'wrong-api-key-0123456789abcdef';
    const base = srv.url;

    // WebSocket with the token in the query string; a malformed frame and a bad command that quote it.
    const ws = await WsClient.connect(`${srv.wsUrl}?token=${token}`);
    ws.ws.send(`{"id":1,"cmd":"subscribe","channel":"${token}"}`);
    ws.ws.send(`not json ${token}`);
    ws.ws.send(`{"id":2,"cmd":"refresh","token":"${token}"}`);
    await ws.waitFor((f) => f['id'] === 2, 'reply to the unknown command');
    ws.ws.close();
    await ws.closed;

    // HTTP transports and unknown routes, each with the token in the query string or a header.
    for (const path of ['/sse', '/stream', '/poll', '/send', '/nope', '/ws']) {
      const res = await fetch(`${base}${path}?channel=bad..channel&token=${token}&timeout=1`, {
        headers: { Authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      }).catch(() => undefined);
      await res?.body?.cancel();
    }

    // A token pasted where a channel goes: the error message quotes the channel.
    const pasted = await fetch(`${base}/sse?channel=${token}..x`, { signal: AbortSignal.timeout(5000) });
    await pasted.body?.cancel();

    // Server API with a wrong key and with the right one.
    for (const key of [wrongKey, API_KEY]) {
      const res = await fetch(`${base}/api/publish?apikey=${key}`, {
        method: 'POST',
        headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'x', data: token }),
      });
      await res.text();
    }

    // A broken HTTP request line carrying the token (the server's clientError path).
    await withTimeout(
      new Promise<void>((resolve) => {
        const socket = net.connect(Number(new URL(base).port), '127.0.0.1', () => {
          socket.write(`GET /sse?token=${token} HTTP/1.1\r\nHost: x\r\nBad Header Line ${token}\r\n\r\n`);
        });
        socket.on('data', () => socket.end());
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      }),
      5000,
      'the broken request to be answered',
    );

    await srv.close();
    srv = undefined;
    expect(capture.lines.length).toBeGreaterThan(0);
    for (const secret of [token, ...token.split('.').filter((p) => p.length > 8), wrongKey, API_KEY]) {
      expect(capture.text, `a log line contains ${secret.slice(0, 12)}...`).not.toContain(secret);
    }
  });
});
