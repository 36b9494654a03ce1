// Load for instruction counts of the publish path (scripts/api-ws-callgrind.sh): N WebSocket subscribers,
// one channel each (c.0 .. c.N-1), then publishes over one `GET /api/ws` connection, one per frame, paced at
// `rate`/s: `warm` of them first, then (with CGPID, the server's pid under callgrind) the counters are zeroed,
// `count` more are sent, and the counters dumped. Waits for every answer and delivery each time.
// Usage: node scripts/api-ws-load.mjs <port> <apiKey> <subscribers> <count> <rate> [warm]
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';

const [port, apiKey, nArg = '2000', kArg = '4000', rArg = '300', wArg = '0'] = process.argv.slice(2);
const [N, K, R, W] = [nArg, kArg, rArg, wArg].map(Number);
const cg = process.env.CGPID;
const base = `ws://127.0.0.1:${port}`;
const opened = (ws) =>
  new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });

let delivered = 0;
const subs = [];
for (let i = 0; i < N; i++) {
  const ws = new WebSocket(`${base}/ws`);
  await opened(ws);
  const ready = new Promise((resolve) => {
    ws.on('message', (d) => {
      const s = d.toString();
      if (s.startsWith('{"id":1,')) resolve();
      else if (s.startsWith('{"push":"pub"')) delivered++;
    });
  });
  ws.send(JSON.stringify({ id: 1, cmd: 'subscribe', channel: `c.${i}` }));
  subs.push(ws);
  await ready;
}
const api = new WebSocket(`${base}/api/ws`, { headers: { authorization: `apikey ${apiKey}` } });
await opened(api);
let answered = 0;
api.on('message', (d) => (answered += (d.toString().match(/"id":/g) ?? []).length));

let next = 0;
async function publish(count) {
  const [d0, a0, t0] = [delivered, answered, Date.now()];
  for (let k = 0; k < count; k++, next++) {
    api.send(`{"id":${next},"method":"publish","params":{"channel":"c.${next % N}","data":{"seq":${next}}}}`);
    const wait = t0 + ((k + 1) * 1000) / R - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const deadline = Date.now() + 120_000;
  while ((delivered - d0 < count || answered - a0 < count) && Date.now() < deadline) await sleep(20);
  if (delivered - d0 < count || answered - a0 < count) throw new Error(`only ${delivered - d0} of ${count} delivered`);
}
if (W > 0) await publish(W);
if (cg) execFileSync('callgrind_control', ['-z', cg], { stdio: 'ignore' });
await publish(K);
if (cg) execFileSync('callgrind_control', ['-d', cg], { stdio: 'ignore' });
console.log(`${K} publications answered and delivered (after ${W} to warm up)`);
for (const s of subs) s.terminate();
api.terminate();
