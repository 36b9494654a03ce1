/**
 * The last step of the fan-out path: one write of one frame to one client's TCP socket.
 *
 * `net.Socket.write` costs about 1 µs of JavaScript per call on top of the kernel's `write()`: the
 * Writable state machine, a write request object, and a callback scheduled for after the write. When
 * nothing is queued on the socket (the common case: every client reading), the same bytes can go
 * straight to the socket's file descriptor with one synchronous `write()`, which is what libuv would
 * do next anyway (`uv_try_write`). Anything the kernel does not take (a full socket buffer, a
 * partial write, an error) goes through `socket.write` as before, so ordering, back-pressure
 * (`writableLength`) and error reporting are unchanged. Only for plain TCP sockets: a TLS socket's
 * descriptor carries encrypted records.
 */
import { writeSync } from 'node:fs';
import type { Duplex } from 'node:stream';

interface StreamHandle {
  readonly fd?: number;
}

type HandleSocket = Duplex & { _handle?: StreamHandle | null; encrypted?: boolean };

/**
 * Whether `socket` can take direct writes: a connected plain TCP socket with a descriptor (not TLS,
 * not a pipe on Windows). Decided once per connection; `writeFrame` checks the per-write conditions.
 */
export function directWritable(socket: Duplex): boolean {
  const s = socket as HandleSocket;
  const handle = s._handle;
  return (
    s.encrypted !== true &&
    handle !== null &&
    handle !== undefined &&
    handle.constructor.name === 'TCP' &&
    typeof handle.fd === 'number' &&
    handle.fd > 2
  );
}

/** Writes `data` to `socket` (see the module comment); `direct` is `directWritable(socket)`. */
export function writeFrame(socket: Duplex, data: Uint8Array, direct: boolean): void {
  if (direct) {
    // The handle is read on every write: when the socket is destroyed it becomes null and its
    // descriptor is closed (and may be reused by another connection) in the same synchronous step,
    // so a handle that is there still owns its descriptor.
    const handle = (socket as HandleSocket)._handle;
    // Nothing queued (so these bytes come after every earlier one: the stream counts a write until
    // libuv has finished it), and the stream not ended (no bytes after a FIN it is about to send).
    if (handle !== null && handle !== undefined && socket.writableLength === 0 && !socket.writableEnded) {
      let written = 0;
      try {
        written = writeSync(handle.fd as number, data);
      } catch {
        // EAGAIN (the socket buffer is full) or a dead peer: socket.write queues or reports it.
      }
      if (written === data.byteLength) return;
      data = data.subarray(written);
    }
  }
  socket.write(data);
}
