/**
 * Herald behind a real nginx (Debian's package) in the configuration a user writes without tuning
 * buffering: `proxy_pass` + `proxy_http_version 1.1` (plus the upgrade headers for /ws), and bare
 * `proxy_pass` with nginx's defaults (HTTP/1.0 to the upstream, `proxy_buffering on`: there nginx
 * holds a streamed response until it ends unless the upstream says `X-Accel-Buffering: no`).
 * The heartbeat is 30 s and every wait is 5 s, so an event that arrives only with a heartbeat, when
 * a buffer fills or when the response ends fails the test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inbox, LineSplitter, SseParser, tempDir, until, withTimeout, type SseEvent } from '@herald/test-support';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { needNginx, startNginx, type RunningNginx } from './support/nginx.js';

const need = needNginx;

const HEARTBEAT = 30_000;
const PROMPT = 5_000;

/** The `http {}` body: Debian's defaults, and the proxy locations a user writes without tuning. */
function nginxHttp(upstream: number): (port: number) => string {
  return (port) => `
  # Debian's defaults (/etc/nginx/nginx.conf).
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  gzip on;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
    }
    # Nothing but proxy_pass: HTTP/1.0 to Herald, proxy buffering on.
    location /bare/ {
      proxy_pass http://127.0.0.1:${upstream}/;
    }
    location /ws {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }
  }
`;
}

interface PollAnswer {
  cursor: string;
  session: string;
  publications: Array<{ data: unknown }>;
}

/** Feeds a response body to `onText` until it ends or is aborted. */
async function readAll(res: Response, onText: (text: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
      onText(decoder.decode(chunk, { stream: true }));
  } catch {
    // aborted by the test
  }
}

async function publish(ts: TestServer, channel: string, data: unknown): Promise<void> {
  const r = await api(ts.url, 'publish', { channel, data });
  expect(r.status).toBe(200);
}

describe.skipIf(need.mode === 'skip')(need.title('behind nginx (default proxy buffering)'), () => {
  let ts: TestServer;
  let nginx: RunningNginx | undefined;
  let base: string;
  const dir = tempDir('nginx');

  beforeAll(async () => {
    if (need.mode === 'fail') throw new Error(need.missing);
    ts = await startServer({ http: { heartbeatInterval: HEARTBEAT, pollTimeout: 25_000 } });
    nginx = await startNginx(dir.path, nginxHttp(ts.server.address?.port ?? 0));
    base = `http://127.0.0.1:${nginx.port}`;
  });
  afterAll(async () => {
    await nginx?.stop();
    await ts?.close();
    dir.remove();
  });

  const vias = [
    { label: 'proxy_http_version 1.1', prefix: '', tag: 'v11' },
    { label: 'bare proxy_pass (HTTP/1.0 upstream)', prefix: '/bare', tag: 'bare' },
  ];
  for (const via of vias) {
    describe(via.label, () => {
      it('delivers an SSE event through nginx at once', async () => {
        const channel = `nginx.sse.${via.tag}`;
        const ac = new AbortController();
        const res = await withTimeout(
          fetch(`${base}${via.prefix}/sse?channel=${channel}`, { signal: ac.signal }),
          PROMPT,
          'SSE response headers through nginx',
        );
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
        const events = new Inbox<SseEvent>();
        const parser = new SseParser((e) => events.push(e));
        const reading = readAll(res, (text) => parser.feed(text));
        try {
          await events.waitFor((e) => e.event === 'subscribed', 'subscribed event through nginx', PROMPT);
          await publish(ts, channel, { small: 1 });
          const e = await events.waitFor((x) => x.event === 'message', 'the publication through nginx', PROMPT);
          expect(JSON.parse(e.data)).toMatchObject({ channel, offset: 1, data: { small: 1 } });
        } finally {
          ac.abort();
          await reading;
        }
      });

      it('delivers a /stream line through nginx at once', async () => {
        const channel = `nginx.nd.${via.tag}`;
        const ac = new AbortController();
        const res = await withTimeout(
          fetch(`${base}${via.prefix}/stream?channel=${channel}`, { signal: ac.signal }),
          PROMPT,
          '/stream response headers through nginx',
        );
        expect(res.status).toBe(200);
        const lines = new Inbox<Record<string, unknown>>();
        const splitter = new LineSplitter((l) => lines.push(JSON.parse(l) as Record<string, unknown>));
        const reading = readAll(res, (text) => splitter.feed(text));
        try {
          await lines.waitFor((f) => f['push'] === 'subscribed', 'subscribed line through nginx', PROMPT);
          await publish(ts, channel, 'x');
          const pub = await lines.waitFor((f) => f['push'] === 'pub', 'the pub line through nginx', PROMPT);
          expect(pub).toMatchObject({ stream: channel, offset: 1, data: 'x' });
        } finally {
          ac.abort();
          await reading;
        }
      });

      it('long-polls through nginx: at once with the position, then held until a publication', async () => {
        const channel = `nginx.poll.${via.tag}`;
        const poll = `${base}${via.prefix}/poll?channel=${channel}`;
        const first = await fetch(poll);
        expect(first.status).toBe(200);
        const a = (await first.json()) as PollAnswer;
        expect(a.publications).toEqual([]);
        const held = withTimeout(
          fetch(`${poll}&cursor=${encodeURIComponent(a.cursor)}&session=${encodeURIComponent(a.session)}`).then(
            async (r) => ({ status: r.status, body: (await r.json()) as PollAnswer }),
          ),
          PROMPT,
          'the held poll through nginx',
        );
        await until(() => ts.server.connectionsByTransport()['long-poll'] === 1, 'the poll is held by Herald', PROMPT);
        await publish(ts, channel, 'p1');
        const b = await held;
        expect(b.status).toBe(200);
        expect(b.body.publications.map((p) => p.data)).toEqual(['p1']);
        // And an empty answer at the poll's own timeout, with the same cursor.
        const empty = (await (
          await fetch(`${poll}&cursor=${encodeURIComponent(b.body.cursor)}&timeout=0.2`)
        ).json()) as PollAnswer;
        expect(empty).toMatchObject({ cursor: b.body.cursor, publications: [] });
      });
    });
  }

  it('passes the WebSocket upgrade through nginx', async () => {
    const ws = await WsClient.connect(`ws://127.0.0.1:${nginx?.port}/ws`);
    await ws.request({ cmd: 'subscribe', channel: 'nginx.ws' });
    await publish(ts, 'nginx.ws', 'w');
    const pub = await ws.waitFor((f) => f['push'] === 'pub', 'pub through nginx', PROMPT);
    expect(pub['data']).toBe('w');
    await ws.close();
  });
});
