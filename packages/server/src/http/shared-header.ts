import type { ServerResponse } from 'node:http';

/**
 * Node keeps an HTTP/1 response's header block (`_header`) while the response is open. It builds
 * it by concatenation, and nothing flattens it: a tree of about 23 V8 cons strings (~800 bytes)
 * held by every open stream. `share` swaps it for an equal flat string, one for all the responses
 * that send the same header bytes (opened in the same second, from the same CORS origin). The
 * bytes sent do not change. Idle memory per connection counts.
 */
export class SharedHeaderBlock {
  private last = '';

  /** Call after `writeHead`. An HTTP/2 response (no header block kept as a string) is left alone. */
  share(res: ServerResponse): void {
    const r = res as ServerResponse & { _header?: unknown };
    const header = r._header;
    if (typeof header !== 'string') return;
    // Node sends `_header` as is, once, and otherwise only tests that it is set: an equal string
    // is safe. A latin1 round trip is exact (header values are checked to be latin1) and flat.
    if (header !== this.last) this.last = Buffer.from(header, 'latin1').toString('latin1');
    r._header = this.last;
  }
}
