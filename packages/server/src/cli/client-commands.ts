/** `herald publish` and `herald subscribe`: small clients for trying and debugging a server. */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { checkChannel } from '@herald/protocol';

function baseUrl(flag: string | undefined): string {
  return (flag ?? process.env['HERALD_URL'] ?? 'http://localhost:8080').replace(/\/+$/, '');
}

export async function runPublish(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: 'string' }, 'api-key': { type: 'string' }, 'idempotency-key': { type: 'string' } },
  });
  const [channel, json] = positionals;
  if (channel === undefined || json === undefined || positionals.length > 2) {
    console.error('usage: herald publish <channel> <json> [--url URL] [--api-key KEY] [--idempotency-key K]');
    return 2;
  }
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    console.error(`herald publish: <json> is not valid JSON: ${json}`);
    return 2;
  }
  const key = values['api-key'] ?? process.env['HERALD_API_KEY'];
  if (key === undefined) {
    console.error('herald publish: give --api-key or set HERALD_API_KEY (the server prints its key at start)');
    return 2;
  }
  const body: Record<string, unknown> = { channel, data };
  if (values['idempotency-key'] !== undefined) body['idempotencyKey'] = values['idempotency-key'];
  const res = await fetch(`${baseUrl(values.url)}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    console.error(`herald publish: HTTP ${res.status} ${text}`);
    return 1;
  }
  console.log(text);
  return 0;
}

/**
 * Subscribes over WebSocket and prints each publication as one JSON line. Reconnects after a drop
 * and recovers from its cursor, printing a note when recovery was not possible.
 */
export async function runSubscribe(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: 'string' }, backlog: { type: 'string' } },
  });
  const [stream] = positionals;
  if (stream === undefined || positionals.length > 1) {
    console.error('usage: herald subscribe <channel|pattern.**> [--url URL] [--backlog N]');
    return 2;
  }
  const check = checkChannel(stream);
  if (!check.ok) {
    console.error(`herald subscribe: invalid channel "${stream}": ${check.reason}`);
    return 2;
  }
  const backlog = values.backlog === undefined ? 0 : Number(values.backlog);
  if (!Number.isInteger(backlog) || backlog < 0) {
    console.error('herald subscribe: --backlog must be an integer >= 0');
    return 2;
  }
  const wsUrl = `${baseUrl(values.url).replace(/^http/, 'ws')}/ws`;
  let cursor: { epoch: string; offset: number } | undefined;
  let attempt = 0;
  for (;;) {
    const outcome = await subscribeOnce(wsUrl, stream, backlog, cursor, (c) => {
      cursor = c;
      attempt = 0;
    });
    if (outcome.fatal) {
      console.error(`herald subscribe: ${outcome.message}`);
      return 1;
    }
    attempt += 1;
    const delay = Math.min(10_000, outcome.retryAfterMs ?? Math.random() * 500 * 2 ** Math.min(attempt, 5));
    console.error(`herald subscribe: ${outcome.message}; reconnecting in ${Math.round(delay)} ms`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

interface Outcome {
  fatal: boolean;
  message: string;
  retryAfterMs?: number;
}

function subscribeOnce(
  url: string,
  stream: string,
  backlog: number,
  since: { epoch: string; offset: number } | undefined,
  onCursor: (c: { epoch: string; offset: number }) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    let epoch = since?.epoch ?? '';
    let retryAfterMs: number | undefined;
    let settled = false;
    const done = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    ws.on('open', () => {
      const cmd: Record<string, unknown> = { id: 1, cmd: 'subscribe', channel: stream };
      if (since !== undefined) cmd['since'] = since;
      if (backlog > 0) cmd['backlog'] = backlog;
      ws.send(JSON.stringify(cmd));
    });
    ws.on('message', (raw: WebSocket.RawData) => {
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw);
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const f = JSON.parse(line) as Record<string, unknown>;
        if (f['id'] === 1 && f['error'] !== undefined) {
          ws.close();
          done({ fatal: true, message: JSON.stringify(f['error']) });
          return;
        }
        if (f['id'] === 1) {
          const r = f['result'] as { epoch: string; offset: number; recovered?: boolean; publications: unknown[] };
          if (r.recovered === false)
            console.error('herald subscribe: could not recover every missed publication (recovered: false)');
          epoch = r.epoch;
          for (const p of r.publications) console.log(JSON.stringify(p));
          onCursor({ epoch, offset: r.offset });
        } else if (f['push'] === 'pub') {
          console.log(JSON.stringify({ channel: f['channel'], offset: f['offset'], data: f['data'] }));
          onCursor({ epoch: f['epoch'] as string, offset: f['offset'] as number });
        } else if (f['push'] === 'disconnect') {
          if (typeof f['retryAfterMs'] === 'number') retryAfterMs = f['retryAfterMs'];
          if (f['reconnect'] === false) done({ fatal: true, message: `disconnected: ${String(f['reason'])}` });
        }
      }
    });
    ws.on('error', (err) =>
      done({ fatal: false, message: err.message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }),
    );
    ws.on('close', (code) =>
      done({
        fatal: false,
        message: `connection closed (${code})`,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      }),
    );
  });
}
