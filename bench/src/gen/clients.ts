/**
 * Minimal subscriber clients over raw TCP sockets, one class per framing: WebSocket (Herald's
 * protocol, plain payload frames, Socket.IO), HTTP streaming (SSE, NDJSON) and long-poll.
 *
 * Why not the `ws` / `eventsource` / `socket.io-client` libraries: the load generator has one core
 * for 10,000 connections and ~100,000 deliveries per second, and must stay well below that core's
 * capacity or it measures itself instead of the server. These clients do only what the benchmark
 * needs: a handshake, framing, pings, and `scanPayloads` over latin1 text (payloads are ASCII).
 */
import { connect, type Socket } from 'node:net';
import {
  findEpoch,
  findMsgpackEpoch,
  msgpackSubscribe,
  scanMsgpackPayloads,
  scanPayloads,
  type PayloadVisitor,
} from './scan.js';
import type { SubSpec } from './messages.js';

export interface SubSink {
  /** A payload arrived: `latencyUs` is receive time minus the publisher's send time. */
  delivered(sub: Sub, seq: number, latencyUs: number): void;
  subscribed(sub: Sub): void;
  failed(sub: Sub, reason: string): void;
  /** The connection ended without being asked to. */
  ended(sub: Sub, reason: string): void;
}

export const SubState = {
  idle: 0,
  connecting: 1,
  subscribed: 2,
  closed: 3,
} as const;
export type SubState = (typeof SubState)[keyof typeof SubState];

const HOST = '127.0.0.1';
const CRLF2 = '\r\n\r\n';

/**
 * Every socket reads into this one buffer (`net.connect({ onread })`): no Buffer per read and no
 * stream machinery. Whatever must outlive the read callback (a partial frame or head) is copied.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export abstract class Sub implements PayloadVisitor {
  /** Last sequence number received (sequence numbers start at 1 on every channel). */
  last = 0;
  /** Sequence numbers up to here are accounted for (received, or counted lost by a drain). */
  acct = 0;
  everSubscribed = false;
  failed = false;
  /** Receive time (ns, CLOCK_MONOTONIC) of the read being scanned. */
  private now = 0;
  /** Herald stream epoch, from the subscribe reply (used to resume). */
  epoch = '';
  state: SubState = SubState.idle;
  protected socket: Socket | undefined;
  /** Reconnecting with a cursor: subscribed only when the server says `recovered: true`. */
  protected resuming = false;
  private head: Buffer | undefined;
  private headDone = false;

  constructor(
    readonly channel: string,
    readonly chIndex: number,
    protected readonly spec: SubSpec,
    protected readonly sink: SubSink,
  ) {}

  /** Connects; `resume` continues from `epoch`/`last` (Herald targets only). */
  open(resume: boolean): void {
    this.resuming = resume;
    this.state = SubState.connecting;
    this.head = undefined;
    this.headDone = false;
    this.reset();
    const socket = connect({
      host: HOST,
      port: this.spec.port,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array): boolean => {
          this.data(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      },
    });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(this.request()));
    socket.on('error', (err) => this.lost(`socket: ${err.message}`));
    socket.on('close', () => this.lost('connection closed'));
  }

  /** Ends the connection on purpose (not counted as an unexpected end). */
  close(): void {
    this.state = SubState.closed;
    this.socket?.destroy();
    this.socket = undefined;
  }

  protected send(data: string | Buffer): void {
    this.socket?.write(data);
  }

  protected path(): string {
    return this.spec.path.replace('{ch}', this.channel);
  }

  protected get host(): string {
    return `Host: ${HOST}:${this.spec.port}\r\n`;
  }

  protected abstract reset(): void;
  protected abstract request(): string;
  /** The response head (status line and headers, lower-cased) arrived; false refuses it. */
  protected abstract onHead(status: number, head: string): boolean;
  protected abstract onBody(buf: Buffer, now: number): void;

  protected markSubscribed(text: string): void {
    if (this.state !== SubState.connecting) return;
    if (this.spec.protocol.startsWith('herald-')) {
      const mp = this.spec.protocol === 'herald-ws-msgpack';
      const epoch = mp ? findMsgpackEpoch(text) : findEpoch(text);
      if (epoch !== undefined) this.epoch = epoch;
      // MessagePack: "recovered" (a9 + 9 bytes) then true (c3).
      if (this.resuming && !text.includes(mp ? '\xa9recovered\xc3' : '"recovered":true')) {
        this.fail('resubscribed with recovered: false');
        return;
      }
    }
    this.state = SubState.subscribed;
    this.sink.subscribed(this);
  }

  protected fail(reason: string): void {
    if (this.state === SubState.closed) return;
    const wasConnecting = this.state === SubState.connecting;
    this.close();
    if (wasConnecting) this.sink.failed(this, reason);
    else this.sink.ended(this, reason);
  }

  protected scan(text: string, now: number): void {
    this.now = now;
    if (this.spec.protocol === 'herald-ws-msgpack') scanMsgpackPayloads(text, this);
    else scanPayloads(text, this);
  }

  payload(seq: number, sentNs: number): void {
    this.sink.delivered(this, seq, (this.now - sentNs) / 1000);
  }

  private lost(reason: string): void {
    if (this.state === SubState.closed || this.state === SubState.idle) return;
    this.fail(reason);
  }

  private data(buf: Buffer): void {
    const now = Number(process.hrtime.bigint());
    if (!this.headDone) {
      const all = this.head === undefined ? buf : Buffer.concat([this.head, buf]);
      const end = all.indexOf(CRLF2);
      if (end === -1) {
        this.head = Buffer.from(all); // `buf` is the shared read buffer
        return;
      }
      this.headDone = true;
      this.head = undefined;
      const head = all.toString('latin1', 0, end).toLowerCase();
      const status = Number(head.slice(9, 12));
      if (!this.onHead(status, head)) {
        this.fail(`HTTP ${status}: ${all.toString('latin1', end + 4, end + 200)}`);
        return;
      }
      if (end + 4 >= all.length) return;
      buf = all.subarray(end + 4);
    }
    this.onBody(buf, now);
  }
}

// -- WebSocket ------------------------------------------------------------------------------------

/** A client frame: masked (as RFC 6455 requires) with a zero key, so the payload is unchanged. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const hdr = len < 126 ? 2 : 4;
  const out = Buffer.alloc(hdr + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  }
  payload.copy(out, hdr + 4);
  return out;
}

const OP_CONT = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;

export class WsSub extends Sub {
  private pending: Buffer | undefined;
  private fragments = '';
  /** Faye: the client id the handshake gave, and the id of the last message sent. */
  private fayeClient = '';
  private fayeSeq = 0;

  protected reset(): void {
    this.pending = undefined;
    this.fragments = '';
    this.fayeClient = '';
  }

  protected request(): string {
    return (
      `GET ${this.path()} HTTP/1.1\r\n${this.host}Upgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: aGVyYWxkLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    );
  }

  protected onHead(status: number): boolean {
    if (status !== 101) return false;
    if (this.spec.protocol === 'herald-ws') {
      const since = this.resuming ? `,"since":{"epoch":"${this.epoch}","offset":${this.last}}` : '';
      this.sendText(`{"id":1,"cmd":"subscribe","channel":"${this.channel}"${since}}`);
    } else if (this.spec.protocol === 'herald-ws-msgpack') {
      const since = this.resuming ? { epoch: this.epoch, offset: this.last } : undefined;
      this.send(clientFrame(OP_BINARY, msgpackSubscribe(this.channel, since)));
    } else if (this.spec.protocol === 'plain-ws') {
      this.markSubscribed('');
    } else if (this.spec.protocol === 'faye') {
      this.sendFaye({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] });
    } // socketio: waits for the Engine.IO open packet
    return true;
  }

  sendText(text: string): void {
    this.send(clientFrame(OP_TEXT, Buffer.from(text)));
  }

  protected onBody(chunk: Buffer, now: number): void {
    let buf = chunk;
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    const n = buf.length;
    let off = 0;
    while (off + 2 <= n) {
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let len = b1 & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (off + 4 > n) break;
        len = buf.readUInt16BE(off + 2);
        hdr = 4;
      } else if (len === 127) {
        if (off + 10 > n) break;
        len = buf.readUInt32BE(off + 6);
        hdr = 10;
      }
      if ((b1 & 0x80) !== 0) hdr += 4; // servers never mask; tolerate it by skipping the key
      if (off + hdr + len > n) break;
      const start = off + hdr;
      off = start + len;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === OP_TEXT || opcode === OP_BINARY || opcode === OP_CONT) {
        const text = buf.toString('latin1', start, start + len);
        if (!fin) {
          this.fragments += text;
          continue;
        }
        const whole = this.fragments === '' ? text : this.fragments + text;
        this.fragments = '';
        this.onText(whole, now);
        if (this.state === SubState.closed) return;
      } else if (opcode === OP_PING) {
        this.send(clientFrame(0x0a, buf.subarray(start, start + len)));
      } else if (opcode === OP_CLOSE) {
        const code = len >= 2 ? buf.readUInt16BE(start) : 1005;
        this.send(clientFrame(OP_CLOSE, buf.subarray(start, start + Math.min(len, 2))));
        this.fail(`closed by server: ${code} ${buf.toString('latin1', start + 2, start + len)}`);
        return;
      }
    }
    if (off < n) this.pending = Buffer.from(buf.subarray(off));
  }

  private onText(text: string, now: number): void {
    if (this.spec.protocol === 'socketio') {
      this.onSocketIo(text, now);
      return;
    }
    if (this.spec.protocol === 'faye' && text.includes('"/meta/')) {
      this.onFayeMeta(text);
      if (this.state === SubState.closed) return;
    }
    if (this.spec.protocol === 'herald-ws' && this.state === SubState.connecting) {
      if (text.includes('{"id":1,"result"')) this.markSubscribed(text);
      else if (text.includes('{"id":1,"error"')) {
        this.fail(`subscribe refused: ${text.slice(0, 200)}`);
        return;
      }
    }
    // MessagePack: {"id": 1, "result" | "error": ...} (the map's keys as a2 "id" 01, a6 "result").
    if (this.spec.protocol === 'herald-ws-msgpack' && this.state === SubState.connecting) {
      if (text.includes('\xa2id\x01\xa6result')) this.markSubscribed(text);
      else if (text.includes('\xa2id\x01\xa5error')) {
        this.fail(`subscribe refused: ${text.slice(0, 200)}`);
        return;
      }
    }
    this.scan(text, now);
  }

  private sendFaye(message: Record<string, unknown>): void {
    this.fayeSeq += 1;
    const clientId = this.fayeClient === '' ? {} : { clientId: this.fayeClient };
    this.sendText(JSON.stringify([{ ...message, ...clientId, id: String(this.fayeSeq) }]));
  }

  /**
   * Bayeux replies (publications in the same frame are scanned by the caller): after the handshake,
   * subscribe and open a `/meta/connect`, which the server answers at its timeout; then open the next.
   */
  private onFayeMeta(text: string): void {
    let messages: { channel?: string; successful?: boolean; clientId?: string; error?: string }[];
    try {
      messages = JSON.parse(text) as typeof messages;
    } catch {
      this.fail(`faye: not JSON: ${text.slice(0, 200)}`);
      return;
    }
    for (const m of messages) {
      if (m.channel === undefined || !m.channel.startsWith('/meta/')) continue;
      if (m.successful !== true) {
        this.fail(`faye ${m.channel} failed: ${m.error ?? text.slice(0, 200)}`);
        return;
      }
      if (m.channel === '/meta/handshake') {
        this.fayeClient = m.clientId ?? '';
        this.sendFaye({ channel: '/meta/subscribe', subscription: `/${this.channel.replaceAll('.', '/')}` });
        this.sendFaye({ channel: '/meta/connect', connectionType: 'websocket' });
      } else if (m.channel === '/meta/subscribe') this.markSubscribed(text);
      else if (m.channel === '/meta/connect') this.sendFaye({ channel: '/meta/connect', connectionType: 'websocket' });
    }
  }

  /** Engine.IO v4 packet types: 0 open, 2 ping, 4 message; Socket.IO: 0 connect, 2 event, 3 ack. */
  private onSocketIo(text: string, now: number): void {
    const type = text.charCodeAt(0);
    if (type === 0x34 /* '4' message */) {
      const sio = text.charCodeAt(1);
      if (sio === 0x32 /* '2' event */) this.scan(text, now);
      else if (sio === 0x30 /* '0' connect */) this.sendText(`420["subscribe","${this.channel}"]`);
      else if (sio === 0x33 /* '3' ack */ && text.startsWith('430')) this.markSubscribed(text);
      else if (sio === 0x34 /* '4' connect error */) this.fail(`socket.io connect error: ${text.slice(0, 200)}`);
    } else if (type === 0x32 /* '2' ping */) this.sendText('3');
    else if (type === 0x30 /* '0' open */) this.sendText('40');
    else if (type === 0x31 /* '1' close */) this.fail('engine.io close');
  }
}

// -- HTTP streaming (SSE, NDJSON) and long-poll -------------------------------------------------------

/** Decodes an HTTP/1.1 body (chunked or not) into latin1 text pieces. */
class BodyDecoder {
  chunked = false;
  private left = 0;
  private crlf = 0;
  private sizeLine = '';

  reset(chunked: boolean): void {
    this.chunked = chunked;
    this.left = 0;
    this.crlf = 0;
    this.sizeLine = '';
  }

  /** Calls `out` with each piece of body text; returns false at the terminating chunk. */
  decode(buf: Buffer, out: (text: string) => void): boolean {
    if (!this.chunked) {
      out(buf.toString('latin1'));
      return true;
    }
    let off = 0;
    const n = buf.length;
    while (off < n) {
      if (this.left > 0) {
        const end = Math.min(n, off + this.left);
        out(buf.toString('latin1', off, end));
        this.left -= end - off;
        off = end;
        if (this.left === 0) this.crlf = 2;
        continue;
      }
      if (this.crlf > 0) {
        off++;
        this.crlf--;
        continue;
      }
      const c = buf[off++]!;
      if (c === 10) {
        const size = parseInt(this.sizeLine, 16);
        this.sizeLine = '';
        if (size === 0) return false;
        this.left = size;
      } else if (c !== 13) this.sizeLine += String.fromCharCode(c);
    }
    return true;
  }
}

export class StreamSub extends Sub {
  private readonly body = new BodyDecoder();
  private carry = '';
  private readonly onText = (text: string): void => {
    this.carry += text;
  };

  protected reset(): void {
    this.carry = '';
  }

  protected request(): string {
    let path = this.path();
    let extra = '';
    if (this.resuming && this.spec.protocol === 'herald-sse') {
      extra = `Last-Event-ID: ${this.channel};${this.epoch};${this.last}\r\n`;
    } else if (this.resuming) {
      path += `&cursor=${this.epoch}:${this.last}`;
    }
    const accept = this.spec.protocol === 'herald-stream' ? 'application/x-ndjson' : 'text/event-stream';
    return `GET ${path} HTTP/1.1\r\n${this.host}Accept: ${accept}\r\n${extra}\r\n`;
  }

  protected onHead(status: number, head: string): boolean {
    if (status !== 200) return false;
    this.body.reset(head.includes('transfer-encoding: chunked'));
    if (this.spec.protocol === 'plain-sse') this.markSubscribed('');
    return true;
  }

  protected onBody(buf: Buffer, now: number): void {
    const more = this.body.decode(buf, this.onText);
    const nl = this.carry.lastIndexOf('\n');
    if (nl !== -1) {
      const text = nl === this.carry.length - 1 ? this.carry : this.carry.slice(0, nl + 1);
      this.carry = nl === this.carry.length - 1 ? '' : this.carry.slice(nl + 1);
      if (this.state === SubState.connecting) {
        const marker = this.spec.protocol === 'herald-sse' ? 'event: subscribed' : '"push":"subscribed"';
        const at = text.indexOf(marker);
        if (at !== -1) this.markSubscribed(text.slice(at));
        else if (text.includes('unsubscribed')) {
          this.fail(`subscribe refused: ${text.slice(0, 200)}`);
          return;
        }
      }
      this.scan(text, now);
      if (text.includes('"push":"disconnect"') || text.includes('event: disconnect')) {
        this.fail(`disconnected: ${text.slice(text.indexOf('disconnect'), 200)}`);
        return;
      }
    }
    if (!more) this.fail('response ended');
  }
}

const CURSOR = /"cursor":"([^"]*)"/;

export class PollSub extends Sub {
  private readonly body = new BodyDecoder();
  private cursor = '';
  private length = -1;
  private text = '';
  private readonly onText = (text: string): void => {
    this.text += text;
  };
  private partialHead: Buffer | undefined;

  protected reset(): void {
    this.length = -1;
    this.text = '';
    this.partialHead = undefined;
    if (this.resuming) this.cursor = `${this.channel};${this.epoch};${this.last}`;
    else this.cursor = '';
  }

  protected request(): string {
    const cursor = this.cursor === '' ? '' : `&cursor=${encodeURIComponent(this.cursor)}`;
    return `GET ${this.path()}${cursor} HTTP/1.1\r\n${this.host}\r\n`;
  }

  protected onHead(status: number, head: string): boolean {
    if (status !== 200) return false;
    this.startBody(head);
    return true;
  }

  private startBody(head: string): void {
    const m = /content-length: *(\d+)/.exec(head);
    this.length = m === null ? -1 : Number(m[1]);
    this.body.reset(head.includes('transfer-encoding: chunked'));
    this.text = '';
  }

  protected onBody(chunk: Buffer, now: number): void {
    let buf: Buffer | undefined = chunk;
    while (buf !== undefined && buf.length > 0) {
      if (this.length === -2) {
        // Between responses: waiting for the next head on the keep-alive connection.
        const all: Buffer = this.partialHead === undefined ? buf : Buffer.concat([this.partialHead, buf]);
        const end = all.indexOf(CRLF2);
        if (end === -1) {
          this.partialHead = Buffer.from(all); // `buf` is the shared read buffer
          return;
        }
        this.partialHead = undefined;
        const head = all.toString('latin1', 0, end).toLowerCase();
        if (Number(head.slice(9, 12)) !== 200) {
          this.fail(`HTTP ${head.slice(9, 12)} on poll`);
          return;
        }
        this.startBody(head);
        buf = all.subarray(end + 4);
        continue;
      }
      let rest: Buffer | undefined;
      if (this.length >= 0) {
        const need = this.length - this.text.length;
        if (buf.length > need) {
          rest = buf.subarray(need);
          buf = buf.subarray(0, need);
        }
      }
      const more = this.body.decode(buf, this.onText);
      const complete = this.length >= 0 ? this.text.length >= this.length : !more;
      if (!complete) return;
      this.answer(this.text, now);
      if (this.state === SubState.closed) return;
      buf = rest;
    }
  }

  private answer(text: string, now: number): void {
    this.length = -2;
    this.text = '';
    if (this.state === SubState.connecting) this.markSubscribed(text);
    if (this.state === SubState.closed) return;
    this.scan(text, now);
    const m = CURSOR.exec(text);
    if (m !== null) this.cursor = m[1]!;
    if (text.includes('"disconnect":')) {
      this.fail('poll answered with a disconnect');
      return;
    }
    this.send(this.request());
  }
}

export function createSub(channel: string, chIndex: number, spec: SubSpec, sink: SubSink): Sub {
  switch (spec.protocol) {
    case 'herald-ws':
    case 'herald-ws-msgpack':
    case 'plain-ws':
    case 'socketio':
    case 'faye':
      return new WsSub(channel, chIndex, spec, sink);
    case 'herald-sse':
    case 'herald-stream':
    case 'plain-sse':
      return new StreamSub(channel, chIndex, spec, sink);
    case 'herald-poll':
      return new PollSub(channel, chIndex, spec, sink);
  }
}
