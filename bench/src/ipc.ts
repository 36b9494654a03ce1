/**
 * The load-generator processes, driven by request/reply messages: the Node ones over the Node IPC
 * channel (`IpcChild`), the native subscriber over its stdin and stdout (`native.ts`).
 */
import type { ChildProcess } from 'node:child_process';
import type { Envelope, ErrorReply } from './gen/messages.js';

/**
 * A child process that answers requests, each carrying an id that its reply repeats. Subclasses say
 * how a request is sent (`transmit`) and hand every reply to `settle`.
 */
export abstract class RequestChild<Req, Rep> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Rep) => void; reject: (e: Error) => void }>();
  private exited = false;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`${name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  /** Sends request `id`; returns a short description of it for a timeout's message. Throws when it cannot. */
  protected abstract transmit(id: number, body: Req): string;

  /** A reply arrived (replies to requests that timed out are dropped). */
  protected settle(msg: Envelope<Rep | ErrorReply>): void {
    const w = this.waiting.get(msg.id);
    if (w === undefined) return;
    this.waiting.delete(msg.id);
    const body = msg.body;
    if (typeof body === 'object' && body !== null && 'error' in body)
      w.reject(new Error(`${this.name}: ${body.error}`));
    else w.resolve(body);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  request<R extends Rep>(body: Req, timeoutMs = 300_000): Promise<R> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      let what: string;
      try {
        what = this.transmit(id, body);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to ${what.slice(0, 80)} within ${timeoutMs} ms`));
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
    });
  }

  /** Asks the child to close (`closeRequest`), then makes sure it is gone. */
  async stop(closeRequest: Req): Promise<void> {
    if (!this.exited) await this.request(closeRequest, 10_000).catch(() => undefined);
    this.proc.stdin?.end();
    await waitExit(this.proc, 5_000);
  }
}

/** A Node child process driven over the Node IPC channel. */
export class IpcChild<Req, Rep> extends RequestChild<Req, Rep> {
  constructor(name: string, proc: ChildProcess) {
    super(name, proc);
    proc.on('message', (msg: Envelope<Rep | ErrorReply>) => this.settle(msg));
  }

  protected transmit(id: number, body: Req): string {
    this.proc.send({ id, body });
    return JSON.stringify(body);
  }
}

/** Waits for a child to exit; SIGKILLs it (by its pid) after `ms`. */
export async function waitExit(proc: ChildProcess, ms: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      resolve();
    }, ms);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
