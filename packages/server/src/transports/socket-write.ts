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
import { writeSync, writevSync } from 'node:fs';
import type { Duplex } from 'node:stream';

interface StreamHandle {
  readonly fd?: number;
}

type HandleSocket = Duplex & { _handle?: StreamHandle | null; encrypted?: boolean };

/**
 * The descriptor `socket` takes direct writes on, or -1: a connected plain TCP socket (not TLS, not a
 * pipe on Windows). Decided once per connection and kept by the caller: the handle's `fd` is a
 * getter that calls into C++ (`uv_fileno`), which cost more per write than the rest of the checks.
 * `writeFrame` checks the per-write conditions.
 */
export function directFd(socket: Duplex): number {
  const s = socket as HandleSocket;
  const handle = s._handle;
  if (s.encrypted === true || handle === null || handle === undefined || handle.constructor.name !== 'TCP') return -1;
  const fd = handle.fd;
  return typeof fd === 'number' && fd > 2 ? fd : -1;
}

/**
 * Writes `data` to `socket` (see the module comment); `fd` is `directFd(socket)`. Returns true when
 * the kernel took every byte straight away, so nothing of it is queued in the socket.
 */
export function writeFrame(socket: Duplex, data: Uint8Array, fd: number): boolean {
  // The handle is checked on every write: when the socket is destroyed it becomes null and its
  // descriptor is closed (and may be reused by another connection) in the same synchronous step,
  // so while the handle is there, `fd` is still this socket's descriptor.
  // Nothing queued (so these bytes come after every earlier one: the stream counts a write until
  // libuv has finished it), and the stream not ended (no bytes after a FIN it is about to send).
  if (direct(socket, fd)) {
    let written = 0;
    try {
      written = writeSync(fd, data);
    } catch {
      // EAGAIN (the socket buffer is full) or a dead peer: socket.write queues or reports it.
    }
    if (written === data.byteLength) return true;
    data = data.subarray(written);
  }
  socket.write(data);
  return false;
}

/**
 * Writes `frames` to `socket` in order, as `writeFrame` does one: one `writev()` straight to the
 * descriptor when nothing is queued, whatever the kernel did not take through `socket.write`.
 */
export function writeFrames(socket: Duplex, frames: readonly Uint8Array[], fd: number): void {
  let written = 0;
  if (direct(socket, fd)) {
    try {
      written = writevSync(fd, frames as Uint8Array[]);
    } catch {
      // EAGAIN or a dead peer: socket.write queues or reports it.
    }
  }
  let i = 0;
  for (; i < frames.length && written >= (frames[i] as Uint8Array).byteLength; i++) {
    written -= (frames[i] as Uint8Array).byteLength;
  }
  if (i === frames.length) return;
  socket.cork();
  socket.write(written > 0 ? (frames[i] as Uint8Array).subarray(written) : (frames[i] as Uint8Array));
  for (i++; i < frames.length; i++) socket.write(frames[i] as Uint8Array);
  socket.uncork();
}

/** Whether bytes may go straight to `fd` now (see `writeFrame`: the handle, nothing queued, not ended). */
function direct(socket: Duplex, fd: number): boolean {
  return fd >= 0 && (socket as HandleSocket)._handle != null && socket.writableLength === 0 && !socket.writableEnded;
}
