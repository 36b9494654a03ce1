/**
 * The RESP2 wire format, as much of it as a pub/sub connection needs: encoding a command, and an
 * incremental reader that turns the bytes Redis sends into replies. A subscriber link reads the
 * protocol itself (instead of through ioredis) because Redis sends pushes that are not replies to
 * any command — a `sunsubscribe` when a Cluster slot moves away from the server — and ioredis takes
 * every unsubscribe push for the reply to the next command it waits for.
 */

/** An error reply (`-ERR ...`, `-MOVED 1234 host:port`). */
export class RespError extends Error {
  override readonly name = 'RespError';
}

export type RespValue = string | number | null | RespError | RespValue[];

/** `*<n>\r\n$<len>\r\n<arg>\r\n...`: a command as Redis reads it. */
export function encodeCommand(args: readonly string[]): Buffer {
  let head = `*${args.length}\r\n`;
  const parts: Buffer[] = [];
  for (const a of args) {
    const bytes = Buffer.from(a, 'utf8');
    head += `$${bytes.length}\r\n`;
    parts.push(Buffer.from(head, 'utf8'), bytes);
    head = '\r\n';
  }
  parts.push(Buffer.from(head, 'utf8'));
  return Buffer.concat(parts);
}

/** Marks an incomplete value (more bytes needed). */
const INCOMPLETE = Symbol('incomplete');

/**
 * Reads replies from a byte stream: `push(chunk)` hands over bytes as they come, `onReply` gets each
 * complete top-level reply in order. A reply cut across chunks is kept until its end arrives; a large
 * bulk string is assembled once, when enough bytes are there, not re-parsed on every chunk.
 */
export class RespReader {
  private rest: Buffer | undefined;
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Bytes (from the start of `rest`) needed before parsing again is worth it. */
  private need = 0;
  /** During a parse: the end of the bulk string that did not fit, for `need`. */
  private wanted = 0;

  constructor(private readonly onReply: (reply: RespValue) => void) {}

  push(chunk: Buffer): void {
    let buf: Buffer;
    if (this.rest === undefined) {
      buf = chunk;
    } else {
      this.parts.push(chunk);
      this.partsLength += chunk.length;
      if (this.rest.length + this.partsLength < this.need) return;
      buf = Buffer.concat([this.rest, ...this.parts]);
      this.rest = undefined;
      this.parts = [];
      this.partsLength = 0;
    }
    let pos = 0;
    while (pos < buf.length) {
      this.wanted = 0;
      const r = this.value(buf, pos);
      if (r === INCOMPLETE) {
        this.rest = buf.subarray(pos);
        this.need = Math.max(this.wanted - pos, this.rest.length + 1);
        return;
      }
      pos = this.end;
      this.onReply(r);
    }
  }

  /** Forgets a partial reply (the connection is gone). */
  reset(): void {
    this.rest = undefined;
    this.parts = [];
    this.partsLength = 0;
    this.need = 0;
  }

  /** Where the last value read ends. */
  private end = 0;

  /**
   * The integer of a `$`, `*` or `:` header starting at `pos` (after the type byte); sets `end`
   * after its CRLF. NaN when the line is not complete.
   */
  private int(buf: Buffer, pos: number): number {
    let i = pos;
    let negative = false;
    if (buf[i] === 45) {
      negative = true;
      i++;
    }
    let n = 0;
    for (;;) {
      const c = buf[i];
      if (c === undefined) return NaN;
      if (c === 13) break;
      n = n * 10 + (c - 48);
      i++;
    }
    if (i + 1 >= buf.length) return NaN;
    this.end = i + 2;
    return negative ? -n : n;
  }

  private value(buf: Buffer, pos: number): RespValue | typeof INCOMPLETE {
    const type = buf[pos] ?? -1;
    if (type === 36) {
      // '$': a bulk string
      const len = this.int(buf, pos + 1);
      if (Number.isNaN(len)) return INCOMPLETE;
      if (len < 0) return null;
      const start = this.end;
      if (start + len + 2 > buf.length) {
        this.wanted = start + len + 2;
        return INCOMPLETE;
      }
      this.end = start + len + 2;
      return buf.toString('utf8', start, start + len);
    }
    if (type === 42) {
      // '*': an array
      const n = this.int(buf, pos + 1);
      if (Number.isNaN(n)) return INCOMPLETE;
      if (n < 0) return null;
      const out: RespValue[] = [];
      for (let i = 0; i < n; i++) {
        const at = this.end;
        if (at >= buf.length) return INCOMPLETE;
        const v = this.value(buf, at);
        if (v === INCOMPLETE) return INCOMPLETE;
        out.push(v);
      }
      return out;
    }
    if (type === 58) {
      // ':': an integer
      const n = this.int(buf, pos + 1);
      return Number.isNaN(n) ? INCOMPLETE : n;
    }
    const cr = buf.indexOf(13, pos + 1);
    if (cr === -1 || cr + 1 >= buf.length) return INCOMPLETE;
    const text = buf.toString('utf8', pos + 1, cr);
    this.end = cr + 2;
    switch (type) {
      case 43: // '+'
        return text;
      case 45: // '-'
        return new RespError(text);
      default:
        throw new Error(`unexpected RESP type byte ${String(type)}`);
    }
  }
}
