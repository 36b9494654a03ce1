/**
 * One backend process publishing as fast as it can for a while, one way (`npm run bench -- backend`):
 * `pool`: `@herald/api` (keep-alive pool of 4, idempotency keys); `websocket`: `@herald/api` over one
 * `GET /api/ws` WebSocket (`publishOver: 'websocket'`, idempotency keys); `new-connection`: a new TCP
 * connection per publish (`node:http` without an agent, as a script calling curl would). Prints one
 * JSON line: publishes done, errors, seconds.
 * Usage: node backend-publisher.js <pool|websocket|new-connection> <port> <apiKey> <seconds> <concurrency>
 */
import { request } from 'node:http';
import { HeraldApi } from '@herald/api';

const [mode = 'pool', portArg = '8080', apiKey = '', secondsArg = '5', concArg = '16'] = process.argv.slice(2);
const port = Number(portArg);
const until = Date.now() + Number(secondsArg) * 1000;
const concurrency = Number(concArg);
let done = 0;
let errors = 0;
let n = 0;

function publishOnce(): Promise<void> {
  const body = JSON.stringify({
    channel: `backend.c${n % 100}`,
    data: { n: n++ },
    idempotencyKey: `k${n}-${process.pid}`,
  });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/api/publish',
        method: 'POST',
        agent: false,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          Authorization: `apikey ${apiKey}`,
          Connection: 'close',
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(String(res.statusCode)))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const api = new HeraldApi({
  url: `http://127.0.0.1:${port}`,
  apiKey,
  connections: 4,
  publishOver: mode === 'websocket' ? 'websocket' : 'http',
});
const one =
  mode === 'pool' || mode === 'websocket'
    ? async (): Promise<void> => {
        await api.publish(`backend.c${n % 100}`, { n: n++ });
      }
    : publishOnce;

const t0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) {
      try {
        await one();
        done++;
      } catch {
        errors++;
      }
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
await api.close();
console.log(JSON.stringify({ mode, done, errors, seconds }));
