// In-process fan-out micro-benchmark for instruction counts (valgrind --tool=callgrind):
// N sessions on one stream, K publications through the hub with the memory engine, written to a
// transport that only counts bytes. Usage: node scripts/fanout-micro.mjs <serverDist> [N] [K] [metrics] [format]
// Compare two builds by the difference of K=<k> and K=0 runs (setup cancels out). `metrics` (on|off,
// default off) gives the hub the counting sink /metrics reads, to weigh what counting costs. `format`
// (json|msgpack, default json) is the sessions' wire format.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [dist = 'packages/server/dist', nArg = '1000', kArg = '200', metricsArg = 'off', format = 'json'] =
  process.argv.slice(2);
const N = Number(nArg);
const K = Number(kArg);
const load = (p) => import(pathToFileURL(path.resolve(dist, p)).href);
const { Hub } = await load('core/hub.js');
const { MemoryEngine } = await load('engines/memory/memory-engine.js');
const encoder =
  format === 'msgpack'
    ? (await load('core/msgpack-encoder.js')).msgpackEncoder
    : (await load('core/encoder.js')).jsonEncoder;
const { silentLogger } = await load('core/logger.js');
const { MetricsTally } = await load('core/metrics.js');

const policy = {
  historySize: 100,
  historyTtl: 300_000,
  historyMetaTtl: 3_600_000,
  maxMessageSize: 65_536,
  anonymousSubscribe: true,
  anonymousPublish: true,
  clientPublish: true,
  hooks: [],
  slowConsumer: { policy: 'disconnect' },
};
const hub = new Hub({
  engine: new MemoryEngine(),
  logger: silentLogger,
  policy: () => policy,
  limits: {
    maxSubscriptionsPerConnection: 100,
    maxQueueBytes: 1 << 24,
    maxCommandsInFlight: 8,
    maxCommandsWaiting: 64,
    maxReplyBytes: 1 << 20,
    maxRecoveryBuffer: 10_000,
  },
  idempotencyWindowMs: 0,
  ...(metricsArg === 'on' ? { metrics: new MetricsTally() } : {}),
});
if (metricsArg === 'on') hub.trackTransport('websocket');
await hub.start();
let bytes = 0;
const transport = {
  name: 'websocket',
  traits: { readsCommands: true, sendCommands: false, stateless: false },
  write: (d) => {
    bytes += d.byteLength;
  },
  bufferedAmount: () => 0,
  close: () => undefined,
};
const sessions = [];
for (let i = 0; i < N; i++) sessions.push(hub.createSession(transport, encoder));
await Promise.all(sessions.map((s) => hub.subscribe(s, 'bench.x', {}, () => undefined)));
const tick = () => new Promise((r) => globalThis.setImmediate(r));
await tick();
bytes = 0;
for (let k = 0; k < K; k++) {
  await hub.publish('bench.x', { n: k, t: 1234567890123 });
  await tick();
}
await tick();
console.log(JSON.stringify({ N, K, format, bytes }));
process.exit(0);
