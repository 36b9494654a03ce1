/**
 * A Herald server with its demos mounted, started the way `herald serve` does it (`prepareDemos`,
 * then `HeraldServer` with the `demos` option), on an ephemeral loopback port; and what the demos'
 * browser tests share (`startOneDemo`, `DemoBrowser`, `visibleText`, `seen`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import {
  HeraldServer,
  prepareDemos,
  resolveConfig,
  type ConfigInput,
  type DemoOptions,
  type Demos,
  type HeraldConfig,
} from '@herald/server';
import { CHROMIUM, chromiumPresent, launchChromium, tempDir, until } from '@herald/test-support';
import { testConfig } from '@herald/test-support/server';
import { bundleClient } from '../../../../scripts/bundle-client.mjs';

export interface DemoServer {
  server: HeraldServer;
  demos: Demos | undefined;
  config: HeraldConfig;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startDemoServer(input: ConfigInput = {}, opts: DemoOptions = {}): Promise<DemoServer> {
  const { config } = resolveConfig({
    host: '127.0.0.1',
    port: 0,
    logLevel: 'silent',
    shutdown: { timeout: '2s', reconnectJitter: 0 },
    ...input,
  });
  const demos = await prepareDemos(config, opts);
  return listen(config, demos);
}

async function listen(config: HeraldConfig, demos: Demos | undefined): Promise<DemoServer> {
  const server = new HeraldServer(config, { demos });
  const { port } = await server.listen();
  return { server, demos, config, url: `http://127.0.0.1:${port}`, port, close: () => server.close() };
}

/**
 * Herald with its /demo/ mount, as `herald serve` runs it, with only the demo `name` (no other
 * demo's timers; the pages' shared files too) and the SDK bundle built from the current sources;
 * `secret` is its HMAC secret (`auth.hmacSecret`), the API key test-support's `API_KEY`.
 */
export async function startOneDemo(name: string, secret: string): Promise<DemoServer> {
  const dir = tempDir(`demo-${name}`);
  const { iife } = await bundleClient();
  writeFileSync(join(dir.path, 'herald.min.js'), iife.code);
  const examples = JSON.stringify(new URL('../../../../examples/index.mjs', import.meta.url).href);
  writeFileSync(
    join(dir.path, 'index.mjs'),
    `export * from ${examples};\nimport { loadDemos as all } from ${examples};\n` +
      `export const loadDemos = async () => (await all()).filter((d) => d.name === ${JSON.stringify(name)});\n`,
  );
  const config = testConfig({ auth: { hmacSecret: secret }, http: { pollTimeout: 2000 } });
  const demos = await prepareDemos(config, { examplesDir: dir.path, sdkPath: join(dir.path, 'herald.min.js') });
  if (demos?.names.join() !== name) throw new Error(`the ${name} demo did not load`);
  const srv = await listen(config, demos);
  return {
    ...srv,
    close: async () => {
      await srv.close();
      dir.remove();
    },
  };
}

/**
 * The Chromium side of a demo's browser test: one browser, a context (its own localStorage) per
 * person, and the errors their pages throw. `launch()` in beforeAll, `reset()` in afterEach (it
 * closes the contexts and answers the errors since the last reset: a test expects none), `close()`
 * in afterAll.
 */
export class DemoBrowser {
  private browser: Browser | undefined;
  private readonly contexts: BrowserContext[] = [];
  private readonly errors: string[] = [];

  /** Launches Chromium; throws when it is not installed (tests skip then, unless CI=true). */
  async launch(): Promise<void> {
    if (!chromiumPresent) throw new Error(`Chromium is not at ${CHROMIUM} (CI=true: the browser test must run)`);
    this.browser = await launchChromium();
  }

  /** A browser of its own (a new context) `width` × 700, and a page in it. */
  async person(width = 1000): Promise<{ ctx: BrowserContext; page: Page }> {
    if (this.browser === undefined) throw new Error('DemoBrowser: launch() first');
    const ctx = await this.browser.newContext({ viewport: { width, height: 700 } });
    this.contexts.push(ctx);
    return { ctx, page: this.watch(await ctx.newPage()) };
  }

  /** Collects the errors `page` throws. */
  watch(page: Page): Page {
    page.on('pageerror', (e) => this.errors.push(String(e)));
    return page;
  }

  /** Closes the contexts; answers the page errors since the last reset. */
  async reset(): Promise<string[]> {
    for (const c of this.contexts.splice(0)) await c.close();
    return this.errors.splice(0);
  }

  async close(): Promise<void> {
    await this.browser?.close();
  }
}

/**
 * What the functions run in the page (page.evaluate) use of its globals: this project type-checks
 * without the DOM library.
 */
interface PageElement {
  textContent: string | null;
  closest(selector: string): PageElement | null;
}
declare const document: { querySelector(selector: string): PageElement | null };

/** The element's text, or null when it is missing or hidden (itself or inside a `[hidden]`). */
export const visibleText = (page: Page, sel: string): Promise<string | null> =>
  page.evaluate((s) => {
    const e = document.querySelector(s);
    return e === null || e.closest('[hidden]') !== null ? null : (e.textContent ?? '');
  }, sel);

/** Waits until the (visible) element's text equals `want` or matches it. */
export async function seen(page: Page, sel: string, want: string | RegExp, what: string, ms = 15_000): Promise<void> {
  let last: string | null = null;
  await until(
    async () => {
      last = await visibleText(page, sel);
      return last !== null && (typeof want === 'string' ? last === want : want.test(last));
    },
    what,
    ms,
    25,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (${sel} is ${JSON.stringify(last)})`);
  });
}
