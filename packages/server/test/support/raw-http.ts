/** A raw HTTP/1.x client connection for tests that check the bytes on the wire. */
import { connect, type Socket } from 'node:net';
import { withTimeout } from '@herald/test-support';

/** Everything a raw connection received, as latin1 text, with a way to await a pattern. */
export class RawConnection {
  text = '';
  closed = false;
  private waiters: Array<() => void> = [];
  readonly socket: Socket;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1');
      this.wake();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async until(pred: (text: string) => boolean, what: string): Promise<void> {
    await withTimeout(
      (async () => {
        while (!pred(this.text)) await new Promise<void>((resolve) => this.waiters.push(resolve));
      })(),
      5000,
      what,
    );
  }
}

/**
 * Decodes a chunked body from `from`: the data of each complete chunk, and whether the last chunk
 * (size 0) was seen. Throws on any framing error.
 */
export function dechunk(text: string, from: number): { chunks: string[]; ended: boolean; next: number } {
  const chunks: string[] = [];
  let i = from;
  for (;;) {
    const eol = text.indexOf('\r\n', i);
    if (eol === -1) return { chunks, ended: false, next: i };
    const sizeText = text.slice(i, eol);
    if (!/^[0-9a-f]+$/.test(sizeText)) throw new Error(`bad chunk size line ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      if (text.length < eol + 4) return { chunks, ended: false, next: i };
      if (text.slice(eol + 2, eol + 4) !== '\r\n') throw new Error('bad last chunk');
      return { chunks, ended: true, next: eol + 4 };
    }
    const end = eol + 2 + size;
    if (text.length < end + 2) return { chunks, ended: false, next: i };
    if (text.slice(end, end + 2) !== '\r\n') throw new Error(`chunk of ${size} bytes not followed by CRLF`);
    chunks.push(text.slice(eol + 2, end));
    i = end + 2;
  }
}
