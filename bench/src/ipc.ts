/** A child process driven by request/reply messages over the Node IPC channel. */
import type { ChildProcess } from 'node:child_process';
import type { Envelope, ErrorReply } from './gen/messages.js';

/** A load-generator process that answers requests: the Node ones over IPC, the native subscriber over pipes. */
export interface Requester<Req, Rep> {
  readonly name: string;
  readonly pid: number;
  request<R extends Rep>(body: Req, timeoutMs?: number): Promise<R>;
  /** Asks the child to close (`closeRequest`), then makes sure it is gone. */
  stop(closeRequest: Req): Promise<void>;
}

export class IpcChild<Req, Rep> implements Requester<Req, Rep> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Rep) => void; reject: (e: Error) => void }>();
  private exited = false;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.on('message', (msg: Envelope<Rep | ErrorReply>) => {
      const w = this.waiting.get(msg.id);
      if (w === undefined) return;
      this.waiting.delete(msg.id);
      const body = msg.body;
      if (typeof body === 'object' && body !== null && 'error' in body) w.reject(new Error(`${name}: ${body.error}`));
      else w.resolve(body);
    });
    proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`${name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  request<R extends Rep>(body: Req, timeoutMs = 300_000): Promise<R> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to ${JSON.stringify(body).slice(0, 80)} within ${timeoutMs} ms`));
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
      this.proc.send({ id, body });
    });
  }

  /** Asks the child to close (`closeRequest`), then makes sure it is gone. */
  async stop(closeRequest: Req): Promise<void> {
    if (!this.exited) await this.request(closeRequest, 10_000).catch(() => undefined);
    await waitExit(this.proc, 5_000);
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
