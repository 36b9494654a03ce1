/**
 * The publisher's client of Herald's `GET /api/ws` (the server API over one WebSocket), hand-rolled
 * like the HTTP one so that the generator's core measures the server: one frame per publication
 * (`{"id":N,"method":"publish","params":{...}}`), the frames made in one turn of the event loop
 * written with one socket write (as `@herald/api` does), at most `window` publications unanswered.
 *
 * Client frames must be masked (RFC 6455 5.3); the mask key is 0, which leaves the payload as is
 * (masking guards browsers' peers against cache poisoning, which does not apply here). Answers are
 * counted without parsing JSON: every answer starts with `{"id":`, a refused one holds `"error":`.
 */
import { connect, type Socket } from 'node:net';

const HOST = '127.0.0.1';

export interface ApiSocketEvents {
  /** `ok` answers with a result, `failed` with an error (`sample`: the first one's text). */
  answers(ok: number, failed: number, sample: string | undefined): void;
  /** The connection closed: `lost` publications had no answer. */
  closed(lost: number): void;
}

export class ApiSocketClient {
  /** Publications sent and not answered yet. */
  inFlight = 0;
  private socket: Socket | undefined;
  private open = false;
  private head = '';
  private buf: Buffer = Buffer.alloc(0);
  private out: Buffer[] = [];
  private flushing = false;
  private nextId = 1;

  constructor(
    private readonly port: number,
    private readonly path: string,
    private readonly headers: Readonly<Record<string, string>>,
    private readonly events: ApiSocketEvents,
  ) {}

  /** Queues the frame of one publication (`params` is its JSON text); written at the end of this turn. */
  publish(params: string): void {
    if (this.socket === undefined || this.socket.destroyed) this.connect();
    this.inFlight++;
    this.out.push(maskedFrame(0x1, Buffer.from(`{"id":${this.nextId++},"method":"publish","params":${params}}`)));
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  close(): void {
    this.socket?.destroy();
  }

  private flush(): void {
    this.flushing = false;
    if (!this.open || this.out.length === 0) return;
    const frames = this.out;
    this.out = [];
    this.socket?.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
  }

  private connect(): void {
    const socket = connect({ host: HOST, port: this.port });
    socket.setNoDelay(true);
    this.open = false;
    this.head = '';
    this.buf = Buffer.alloc(0);
    let headers = '';
    for (const [k, v] of Object.entries(this.headers)) headers += `${k}: ${v}\r\n`;
    socket.write(
      `GET ${this.path} HTTP/1.1\r\nHost: ${HOST}:${this.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`,
    );
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.open = false;
      const lost = this.inFlight;
      this.inFlight = 0;
      this.out = [];
      this.events.closed(lost);
    });
    this.socket = socket;
  }

  private data(chunk: Buffer): void {
    if (!this.open) {
      this.head += chunk.toString('latin1');
      const end = this.head.indexOf('\r\n\r\n');
      if (end === -1) return;
      if (!this.head.startsWith('HTTP/1.1 101')) {
        this.socket?.destroy();
        return;
      }
      this.open = true;
      chunk = Buffer.from(this.head.slice(end + 4), 'latin1');
      this.flush();
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let ok = 0;
    let failed = 0;
    let sample: string | undefined;
    for (;;) {
      const f = frameAt(this.buf);
      if (f === undefined) break;
      const payload = this.buf.subarray(f.start, f.end);
      this.buf = this.buf.subarray(f.end);
      if (f.opcode === 0x9) this.socket?.write(maskedFrame(0xa, payload));
      if (f.opcode !== 0x1) continue;
      const text = payload.toString('utf8');
      let answers = 0;
      for (let i = text.indexOf('{"id":'); i !== -1; i = text.indexOf('{"id":', i + 6)) answers++;
      let errors = 0;
      for (let i = text.indexOf('"error":'); i !== -1; i = text.indexOf('"error":', i + 8)) errors++;
      if (errors > 0) sample ??= text.slice(0, 160);
      ok += answers - errors;
      failed += errors;
    }
    if (ok + failed > 0) {
      this.inFlight -= ok + failed;
      this.events.answers(ok, failed, sample);
    }
  }
}

/** The frame at the start of `buf` (server frames are not masked), or undefined if incomplete. */
function frameAt(buf: Buffer): { opcode: number; start: number; end: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = (buf[0] as number) & 0x0f;
  let len = (buf[1] as number) & 0x7f;
  let start = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    start = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = buf.readUInt32BE(2) * 2 ** 32 + buf.readUInt32BE(6);
    start = 10;
  }
  if (buf.length < start + len) return undefined;
  return { opcode, start, end: start + len };
}

/** A final client frame with a zero mask key. */
function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const headerLen = (len < 126 ? 2 : len < 65_536 ? 4 : 10) + 4;
  const frame = Buffer.alloc(headerLen + len);
  frame[0] = 0x80 | opcode;
  if (len < 126) frame[1] = 0x80 | len;
  else if (len < 65_536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  payload.copy(frame, headerLen);
  return frame;
}
