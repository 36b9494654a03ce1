/**
 * Test support for the NATS engine: whether NATS (with JetStream) is there, isolated prefixes,
 * cleanup, and `nats-server` processes of the tests' own on free ports (for faults).
 *
 * Skip rule: when NATS at HERALD_TEST_NATS_URL (default nats://127.0.0.1:4222) does not answer with
 * JetStream, the NATS tests are skipped with a note on the console, so the suite still passes on a
 * machine without NATS. With CI=true they are not skipped: they run and fail loudly.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { canConnect, freePort } from '@herald/test-support';
import { startServer, type TestConfigInput, type TestServer } from '@herald/test-support/server';
import { NatsEngine, type NatsEngineOptions } from '../../src/engines/nats/nats-engine.js';

export const NATS_URL = process.env['HERALD_TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';
const IN_CI = process.env['CI'] === 'true';

async function probe(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 1000, reconnect: false });
    try {
      await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo();
    } finally {
      await nc.close();
    }
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const failure = await probe();
/** Skip the NATS tests: NATS (with JetStream) is absent and this is not CI. */
export const skipNats = failure !== undefined && !IN_CI;
if (skipNats) {
  console.warn(
    `[herald] NATS tests skipped: no NATS with JetStream at ${NATS_URL} (${failure ?? ''}). ` +
      'Start one (nats-server -js) or set HERALD_TEST_NATS_URL; with CI=true they run and fail.',
  );
}

/** `nats-server` can be spawned (for tests that start their own servers). */
export const natsServerBinary = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).status === 0;
export const skipSpawnedNats = !natsServerBinary && !IN_CI;
if (skipSpawnedNats) console.warn('[herald] NATS fault tests skipped: nats-server not found on PATH.');

/** A subject/stream prefix no other test run uses. */
export function testPrefix(): string {
  return `ht${randomBytes(4).toString('hex')}`;
}

/** Deletes every JetStream stream (and key-value bucket) whose name starts with `prefix`. */
export async function dropPrefix(prefix: string, url = NATS_URL): Promise<void> {
  const nc = await connect({ servers: url, timeout: 2000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const s of jsm.streams.names()) {
      if (s.startsWith(`${prefix}_`) || s.startsWith(`KV_${prefix}_`)) names.push(s);
    }
    for (const s of names) await jsm.streams.delete(s);
  } finally {
    await nc.close();
  }
}

export interface NatsServerOptions {
  /** JetStream storage: 'file' keeps streams across restarts (in the server's own directory). */
  readonly storage?: 'file' | 'memory';
  /** Cluster: this server's route port and the route URLs of the others. */
  readonly cluster?: { readonly name: string; readonly port: number; readonly routes: readonly string[] };
  /** Server name (unique in a cluster). */
  readonly name?: string;
  /** More command-line flags (auth, TLS: `--user u --pass p`, `--tls --tlscert f --tlskey f`). */
  readonly args?: readonly string[];
}

/** A `nats-server` of the test's own; `restart()` keeps its port (and, with file storage, its data). */
export class NatsServerProcess {
  private proc: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'herald-nats-'));

  private constructor(
    readonly port: number,
    private readonly opts: NatsServerOptions,
  ) {}

  static async start(opts: NatsServerOptions = {}, port?: number): Promise<NatsServerProcess> {
    const p = new NatsServerProcess(port ?? (await freePort()), opts);
    await p.run();
    return p;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  private async run(): Promise<void> {
    const args = ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.dir];
    if (this.opts.name !== undefined) args.push('-n', this.opts.name);
    if (this.opts.args !== undefined) args.push(...this.opts.args);
    if (this.opts.cluster !== undefined) {
      const c = this.opts.cluster;
      args.push('--cluster_name', c.name, '--cluster', `nats://127.0.0.1:${c.port}`, '--routes', c.routes.join(','));
    }
    const proc = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    let log = '';
    proc.stderr?.on('data', (b: Buffer) => {
      log = (log + b.toString()).slice(-4000);
    });
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`nats-server on port ${this.port} did not start: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the server (SIGKILL: no clean shutdown). With memory storage, its streams' messages are gone. */
  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGKILL');
    await exited;
  }

  /** Starts it again on the same port; `wipe` drops its storage directory first (storage lost). */
  async restart(wipe = false): Promise<void> {
    await this.stop();
    if (wipe) {
      rmSync(this.dir, { recursive: true, force: true });
    }
    await this.run();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Herald node on NATS in this test process: a HeraldServer with its own NatsEngine. */
export interface NatsNode extends TestServer {
  engine: NatsEngine;
}

export async function startNatsNode(
  prefix: string,
  over: TestConfigInput = {},
  nats: Partial<NatsEngineOptions> = {},
): Promise<NatsNode> {
  const engine = new NatsEngine({ servers: [NATS_URL], prefix, commandTimeout: 2000, ...nats });
  const srv = await startServer({ ...over, engine: 'nats' } as TestConfigInput, { engine });
  return { ...srv, engine };
}
