/** Small helpers shared by the peer servers. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** `--port N` from argv. */
export function portArg(argv: readonly string[]): number {
  const i = argv.indexOf('--port');
  const port = i === -1 ? NaN : Number(argv[i + 1]);
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: --port N');
  return port;
}

/** The value of `?channel=` in a request URL. */
export function channelOf(url: string | undefined): string {
  const q = (url ?? '').indexOf('?');
  return new URLSearchParams(q === -1 ? '' : (url ?? '').slice(q + 1)).get('channel') ?? '';
}

/** Reads a request body as text (publish requests are small), then calls `done`. */
export function readBody(req: IncomingMessage, res: ServerResponse, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    done(Buffer.concat(chunks).toString('utf8'));
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 2 });
    res.end('ok');
  });
}

/** Rooms: channel name → members. */
export class Rooms<T> {
  private readonly rooms = new Map<string, Set<T>>();

  join(channel: string, member: T): void {
    let room = this.rooms.get(channel);
    if (room === undefined) this.rooms.set(channel, (room = new Set()));
    room.add(member);
  }

  leave(channel: string, member: T): void {
    const room = this.rooms.get(channel);
    if (room === undefined) return;
    room.delete(member);
    if (room.size === 0) this.rooms.delete(channel);
  }

  members(channel: string): ReadonlySet<T> | undefined {
    return this.rooms.get(channel);
  }
}

/** Exits when the orchestrator that started this peer is gone (so a killed run leaves nothing behind). */
export function exitWithParent(): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000).unref();
  process.on('SIGTERM', () => process.exit(0));
}
