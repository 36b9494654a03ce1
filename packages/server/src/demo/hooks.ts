/**
 * Backend hooks for the demos. Herald has one `auth.hooks.url`; in demo mode (when the operator set
 * none) it points at this small listener on a loopback port of its own, which hands each call to
 * the demo that owns it: `subscribe` and `publish` by the channel's namespace (the demo whose
 * `meta.namespaces` names it), `rpc` by the method's first part (`tictactoe.move` → tictactoe).
 * Calls must carry the random key Herald was given (`auth.hooks.apiKey`).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';

export interface HookAnswer {
  allow: boolean;
  data?: unknown;
  reason?: string;
}

/** Answers one hook call, or undefined when no demo takes it. */
export type HookRoute = (event: string, body: Record<string, unknown>) => Promise<HookAnswer | undefined>;

const MAX_BODY = 1024 * 1024;

export class DemoHookListener {
  private readonly server: Server;
  private readonly key: Buffer;

  constructor(
    private readonly route: HookRoute,
    key: string,
    private readonly logger: Logger,
  ) {
    this.key = Buffer.from(`apikey ${key}`);
    this.server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      this.serve(req, res).catch((err: unknown) => {
        this.logger.warn({ err }, 'demo hook failed');
        if (!res.headersSent) answer(res, 500, { allow: false, reason: 'the demo backend failed' });
        else res.destroy();
      });
    });
  }

  /** Listens on an ephemeral loopback port; resolves with the base URL for `auth.hooks.url`. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/hooks`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== this.key.length || !timingSafeEqual(given, this.key)) {
      req.resume();
      answer(res, 401, { allow: false, reason: 'not Herald' });
      return;
    }
    const m = /^\/hooks\/([a-z]+)$/.exec(req.url ?? '');
    const event = m?.[1];
    if (req.method !== 'POST' || event === undefined) {
      req.resume();
      answer(res, 404, { allow: false, reason: 'no such hook' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) {
        answer(res, 413, { allow: false, reason: 'body too large' });
        return;
      }
      chunks.push(chunk);
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    const result = await this.route(event, body);
    answer(res, 200, result ?? { allow: false, reason: `no demo answers this ${event}` });
  }
}

function answer(res: ServerResponse, status: number, body: HookAnswer): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
