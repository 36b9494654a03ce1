/**
 * The native subscriber (`bench/native/subscriber.c`): built with the system's C compiler on first
 * use, started pinned like the Node one, and driven through the same request/reply interface, over
 * its stdin and stdout (one command a line, one JSON reply a line).
 *
 * It speaks the WebSocket protocols only (Herald's, plain frames, Socket.IO, Faye) and has no
 * reconnect storm (`recover`): scenarios that need anything else use the Node subscriber.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Envelope, ErrorReply, SubProtocol, SubscriberReply, SubscriberRequest } from './gen/messages.js';
import type { Requester } from './ipc.js';
import { waitExit } from './ipc.js';
import { spawnPinned } from './launch.js';
import { REPO_ROOT } from './targets.js';

export const NATIVE_PROTOCOLS: readonly SubProtocol[] = ['herald-ws', 'plain-ws', 'socketio', 'faye'];

const SOURCE = join(REPO_ROOT, 'bench', 'native', 'subscriber.c');
const BINARY = join(REPO_ROOT, 'bench', 'dist', 'native', 'subscriber');

/**
 * The path of the native subscriber, compiled now if it is missing or older than its source; or why
 * it cannot be had (no C compiler).
 */
export function nativeSubscriber(): { path: string } | { error: string } {
  try {
    if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= statSync(SOURCE).mtimeMs) return { path: BINARY };
    mkdirSync(dirname(BINARY), { recursive: true });
    const cc = process.env.CC ?? 'cc';
    execFileSync(cc, ['-O2', '-Wall', '-o', BINARY, SOURCE, '-lm'], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { path: BINARY };
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return { error: `cannot build ${SOURCE}: ${stderr !== undefined && stderr !== '' ? stderr : String(err)}` };
  }
}

/** One request as the command line `subscriber.c` reads. */
function commandLine(id: number, req: SubscriberRequest): string {
  switch (req.type) {
    case 'connect': {
      const { spec } = req;
      if (!NATIVE_PROTOCOLS.includes(spec.protocol))
        throw new Error(`the native subscriber does not speak ${spec.protocol}`);
      if (/\s/.test(spec.path)) throw new Error(`path with white space: ${spec.path}`);
      const after = req.after ?? [];
      return [
        'connect',
        id,
        spec.protocol,
        spec.port,
        spec.path,
        req.first,
        req.n,
        req.channels,
        req.concurrency,
        after.length,
        ...after,
      ].join(' ');
    }
    case 'drain':
      return ['drain', id, req.timeoutMs, req.final.length, ...req.final].join(' ');
    case 'mark':
    case 'window':
    case 'drop':
    case 'close':
      return `${req.type} ${id}`;
    case 'recover':
      throw new Error('the native subscriber has no reconnect storm (recover)');
  }
}

export class NativeSubscriber implements Requester<SubscriberRequest, SubscriberReply> {
  readonly name = 'native subscriber';
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: SubscriberReply) => void; reject: (e: Error) => void }>();
  private exited = false;
  readonly proc: ChildProcess;

  constructor(binary: string, cpu: number | undefined) {
    this.proc = spawnPinned(binary, [], { cpu, pipes: true });
    const lines = createInterface({ input: this.proc.stdout! });
    lines.on('line', (line) => {
      let msg: Envelope<SubscriberReply | ErrorReply>;
      try {
        msg = JSON.parse(line) as Envelope<SubscriberReply | ErrorReply>;
      } catch {
        return;
      }
      const w = this.waiting.get(msg.id);
      if (w === undefined) return;
      this.waiting.delete(msg.id);
      const body = msg.body;
      if ('error' in body) w.reject(new Error(`${this.name}: ${body.error}`));
      else w.resolve(body);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`${this.name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  request<R extends SubscriberReply>(body: SubscriberRequest, timeoutMs = 300_000): Promise<R> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = this.nextId++;
    let line: string;
    try {
      line = commandLine(id, body);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to ${line.slice(0, 80)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r as R);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.stdin!.write(`${line}\n`);
    });
  }

  async stop(closeRequest: SubscriberRequest): Promise<void> {
    if (!this.exited) await this.request(closeRequest, 10_000).catch(() => undefined);
    this.proc.stdin?.end();
    await waitExit(this.proc, 5_000);
  }
}
