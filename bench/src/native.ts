/**
 * The native subscriber (`bench/native/subscriber.c`): built with the system's C compiler on first
 * use, started pinned like the Node one, and driven through the same request/reply interface, over
 * its stdin and stdout (one command a line, one JSON reply a line).
 *
 * It speaks WebSocket (Herald's protocol, plain frames, Socket.IO, Faye) and HTTP streaming
 * (Herald's SSE and NDJSON, plain SSE), but not long-polling, and has no reconnect storm (`recover`):
 * scenarios that need those use the Node subscriber.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Envelope, ErrorReply, SubProtocol, SubscriberReply, SubscriberRequest } from './gen/messages.js';
import { RequestChild } from './ipc.js';
import { spawnPinned } from './launch.js';
import { REPO_ROOT } from './targets.js';

export const NATIVE_PROTOCOLS: readonly SubProtocol[] = [
  'herald-ws',
  'herald-ws-msgpack',
  'plain-ws',
  'socketio',
  'faye',
  'herald-sse',
  'herald-stream',
  'plain-sse',
];

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

export class NativeSubscriber extends RequestChild<SubscriberRequest, SubscriberReply> {
  constructor(binary: string, cpu: number | undefined) {
    super('native subscriber', spawnPinned(binary, [], { cpu, pipes: true }));
    // A write to a subscriber that died fails with EPIPE; its exit already rejects what waits.
    this.proc.stdin!.on('error', () => undefined);
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let msg: Envelope<SubscriberReply | ErrorReply>;
      try {
        msg = JSON.parse(line) as Envelope<SubscriberReply | ErrorReply>;
      } catch {
        return; // not a reply: nothing waits for it
      }
      this.settle(msg);
    });
  }

  protected transmit(id: number, body: SubscriberRequest): string {
    const line = commandLine(id, body);
    this.proc.stdin!.write(`${line}\n`);
    return line;
  }
}
