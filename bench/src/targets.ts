/**
 * The servers a run measures — Herald and its peers — and how the load generator subscribes and
 * publishes to each. A target is one server kind seen through one transport.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PubSpec, SubSpec } from './gen/messages.js';
import { freePort, spawnPinned, stopChild, waitPort, workDir } from './launch.js';
import { processTree } from './proc.js';
import { ensureNchan, nchanCommand } from './peers/nchan.js';

export type ServerKind = 'herald' | 'raw-ws' | 'raw-ws-prebuilt' | 'socketio' | 'faye' | 'nchan' | 'raw-sse';
export type Transport = 'ws' | 'sse' | 'stream' | 'poll';

export interface TargetDef {
  readonly id: string;
  readonly label: string;
  readonly server: ServerKind;
  readonly transport: Transport;
  sub(port: number): SubSpec;
  pub(port: number): PubSpec;
  /** Extra `HERALD_*` environment for this target's Herald (e.g. metrics off). */
  readonly heraldEnv?: Readonly<Record<string, string>>;
  /** A path the run fetches from the server once a second while it runs, as a Prometheus server would. */
  readonly scrape?: string;
  /**
   * The server is not pinned to the server core: it may use every core, the load generator's too
   * (workers at saturation). Its CPU still counts every process of the server (supervisor, workers).
   */
  readonly unpinned?: boolean;
}

export const API_KEY = 'bench-key-0123456789abcdef';

const heraldPub = (port: number): PubSpec => ({
  style: 'herald',
  port,
  path: '/api/publish',
  headers: { Authorization: `apikey ${API_KEY}` },
});
/** Publications that wait for a connection go out together through `POST /api/batch`. */
const heraldBatchPub = (port: number): PubSpec => ({
  style: 'herald-batch',
  port,
  path: '/api/batch',
  headers: { Authorization: `apikey ${API_KEY}` },
  batch: 100,
});
/** Every publication one frame on one `GET /api/ws` WebSocket (the server API over a WebSocket). */
const heraldApiWsPub = (port: number): PubSpec => ({
  style: 'herald-apiws',
  port,
  path: '/api/ws',
  headers: { Authorization: `apikey ${API_KEY}` },
});
const rawPub =
  (path: string) =>
  (port: number): PubSpec => ({ style: 'raw', port, path, headers: {} });

export const TARGETS: readonly TargetDef[] = [
  {
    id: 'herald-ws',
    label: 'Herald WS',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldPub,
  },
  {
    // Herald's MessagePack protocol (`?format=msgpack`): against herald-ws, JSON and MessagePack in one run.
    id: 'herald-ws-msgpack',
    label: 'Herald WS (MessagePack)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws-msgpack', port, path: '/ws?format=msgpack' }),
    pub: heraldPub,
  },
  {
    id: 'herald-ws-scraped',
    label: 'Herald WS (metrics scraped 1/s)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldPub,
    scrape: '/metrics',
  },
  {
    id: 'herald-ws-nometrics',
    label: 'Herald WS (metrics off)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldPub,
    heraldEnv: { HERALD_METRICS_ENABLED: 'false' },
  },
  {
    id: 'herald-ws-batch',
    label: 'Herald WS (batch API)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldBatchPub,
  },
  {
    id: 'herald-ws-apiws',
    label: 'Herald WS (publish over /api/ws)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldApiWsPub,
  },
  {
    // `herald serve --workers 2` on the server core: the cost per delivery of the supervisor's IPC.
    id: 'herald-ws-workers2',
    label: 'Herald WS (2 workers, one core)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldPub,
    heraldEnv: { HERALD_WORKERS: '2' },
  },
  {
    // Saturation on every core, the load generator's included: one process, then two workers.
    id: 'herald-ws-unpinned',
    label: 'Herald WS (1 process, all cores)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldPub,
    unpinned: true,
  },
  {
    id: 'herald-ws-workers2-unpinned',
    label: 'Herald WS (2 workers, all cores)',
    server: 'herald',
    transport: 'ws',
    sub: (port) => ({ protocol: 'herald-ws', port, path: '/ws' }),
    pub: heraldPub,
    heraldEnv: { HERALD_WORKERS: '2' },
    unpinned: true,
  },
  {
    id: 'herald-sse',
    label: 'Herald SSE',
    server: 'herald',
    transport: 'sse',
    sub: (port) => ({ protocol: 'herald-sse', port, path: '/sse?channel={ch}' }),
    pub: heraldPub,
  },
  {
    id: 'herald-stream',
    label: 'Herald NDJSON',
    server: 'herald',
    transport: 'stream',
    sub: (port) => ({ protocol: 'herald-stream', port, path: '/stream?channel={ch}' }),
    pub: heraldPub,
  },
  {
    id: 'herald-poll',
    label: 'Herald long-poll',
    server: 'herald',
    transport: 'poll',
    sub: (port) => ({ protocol: 'herald-poll', port, path: '/poll?channel={ch}' }),
    pub: heraldPub,
  },
  {
    id: 'nchan-ws',
    label: 'Nchan WS',
    server: 'nchan',
    transport: 'ws',
    sub: (port) => ({ protocol: 'plain-ws', port, path: '/ws/{ch}' }),
    pub: rawPub('/pub/{ch}'),
  },
  {
    id: 'nchan-sse',
    label: 'Nchan SSE',
    server: 'nchan',
    transport: 'sse',
    sub: (port) => ({ protocol: 'plain-sse', port, path: '/sse/{ch}' }),
    pub: rawPub('/pub/{ch}'),
  },
  {
    id: 'ws-prebuilt',
    label: 'raw ws (pre-built frame)',
    server: 'raw-ws-prebuilt',
    transport: 'ws',
    sub: (port) => ({ protocol: 'plain-ws', port, path: '/ws?channel={ch}' }),
    pub: rawPub('/publish?channel={ch}'),
  },
  {
    id: 'ws-naive',
    label: 'raw ws (naive)',
    server: 'raw-ws',
    transport: 'ws',
    sub: (port) => ({ protocol: 'plain-ws', port, path: '/ws?channel={ch}' }),
    pub: rawPub('/publish?channel={ch}'),
  },
  {
    id: 'socketio',
    label: 'Socket.IO 4.8',
    server: 'socketio',
    transport: 'ws',
    sub: (port) => ({ protocol: 'socketio', port, path: '/socket.io/?EIO=4&transport=websocket' }),
    pub: rawPub('/publish?channel={ch}'),
  },
  {
    id: 'faye',
    label: 'Faye 1.4',
    server: 'faye',
    transport: 'ws',
    sub: (port) => ({ protocol: 'faye', port, path: '/faye' }),
    pub: rawPub('/publish?channel={ch}'),
  },
  {
    id: 'raw-sse',
    label: 'raw Node SSE',
    server: 'raw-sse',
    transport: 'sse',
    sub: (port) => ({ protocol: 'plain-sse', port, path: '/sse?channel={ch}' }),
    pub: rawPub('/publish?channel={ch}'),
  },
];

export function target(id: string): TargetDef {
  const t = TARGETS.find((x) => x.id === id);
  if (t === undefined) throw new Error(`unknown target "${id}" (known: ${TARGETS.map((x) => x.id).join(', ')})`);
  return t;
}

export function isHerald(t: TargetDef): boolean {
  return t.server === 'herald';
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (bench/dist/.. /..). */
export const REPO_ROOT = join(here, '..', '..');
export const HERALD_MAIN = join(REPO_ROOT, 'packages', 'server', 'dist', 'cli', 'main.js');

export interface ServerOptions {
  readonly cpu: number | undefined;
  /** Write a V8 CPU profile of Herald into this folder (`node --cpu-prof`). */
  readonly profileDir?: string;
  /** Extra `HERALD_*` environment for Herald (e.g. the engine). */
  readonly heraldEnv?: Readonly<Record<string, string>>;
  /** Herald on a given port instead of a free one (multi-node runs). */
  readonly port?: number;
  /** Extra `node` flags for the Node servers (Herald and the Node peers). */
  readonly nodeFlags?: readonly string[];
}

export class RunningServer {
  constructor(
    readonly kind: ServerKind | 'redis' | 'nats',
    readonly port: number,
    readonly child: ChildProcess,
  ) {}

  /** The server process and its children (the nginx worker). */
  pids(): number[] {
    return this.child.pid === undefined ? [] : processTree(this.child.pid);
  }

  async stop(): Promise<void> {
    // Herald drains gracefully on SIGTERM (and writes its CPU profile); the peers and nginx (fast
    // shutdown) exit at once.
    await stopChild(this.child, 20_000, 'SIGTERM');
  }
}

/** Why a server kind cannot run here, or undefined when it can (installs Nchan when needed). */
export function unavailable(kind: ServerKind, log: (line: string) => void): string | undefined {
  if (kind === 'nchan') return ensureNchan(log);
  return undefined;
}

function heraldEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HERALD_')) env[k] = v;
  return { ...env, ...extra };
}

export async function startServer(kind: ServerKind, opts: ServerOptions): Promise<RunningServer> {
  const port = opts.port ?? (await freePort());
  const node = process.execPath;
  // BENCH_SERVER_FLAGS: extra node flags for a Herald server (e.g. a GC setting, to compare).
  const extra = (process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const flags = [...(opts.nodeFlags ?? []), ...extra];
  let child: ChildProcess;
  const log = `${kind}-${port}.log`;
  switch (kind) {
    case 'herald': {
      const prof = opts.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.profileDir];
      const args = [...flags, ...prof, HERALD_MAIN, 'serve', '--port', String(port), '--host', '127.0.0.1'];
      // No demo apps: the Ticker's backend would publish 20 times a second and scan the channels.
      args.push('--api-key', API_KEY, '--log-level', 'warn', '--no-demos');
      // One process unless the target asks for workers (`auto` would follow the machine's cores).
      child = spawnPinned(node, args, {
        cpu: opts.cpu,
        log,
        env: heraldEnv({ HERALD_WORKERS: '1', ...opts.heraldEnv }),
      });
      break;
    }
    case 'raw-ws':
    case 'raw-ws-prebuilt': {
      const mode = kind === 'raw-ws' ? 'naive' : 'prebuilt';
      child = spawnPinned(
        node,
        [...flags, join(here, 'peers', 'raw-ws-server.js'), '--port', String(port), '--mode', mode],
        {
          cpu: opts.cpu,
          log,
        },
      );
      break;
    }
    case 'socketio':
      child = spawnPinned(node, [...flags, join(here, 'peers', 'socketio-server.js'), '--port', String(port)], {
        cpu: opts.cpu,
        log,
      });
      break;
    case 'faye':
      child = spawnPinned(node, [...flags, join(here, 'peers', 'faye-server.js'), '--port', String(port)], {
        cpu: opts.cpu,
        log,
      });
      break;
    case 'raw-sse':
      child = spawnPinned(node, [...flags, join(here, 'peers', 'raw-sse-server.js'), '--port', String(port)], {
        cpu: opts.cpu,
        log,
      });
      break;
    case 'nchan': {
      const { cmd, args } = nchanCommand(join(workDir(), `nchan-${port}`), port);
      child = spawnPinned(cmd, args, { cpu: opts.cpu, log });
      break;
    }
  }
  try {
    await waitPort(port, 20_000, child);
  } catch (err) {
    await stopChild(child, 2_000, 'SIGKILL');
    throw new Error(`${kind} did not start: ${(err as Error).message} (log: ${join(workDir(), log)})`);
  }
  return new RunningServer(kind, port, child);
}
