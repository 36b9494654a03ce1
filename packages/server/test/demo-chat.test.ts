/**
 * The Chat demo (examples/chat) end to end: Herald serving it under /demo/chat/ (its demo mount: the
 * pages, the example's backend, the SDK bundle), and headless Chromium with one browser context (its
 * own localStorage) per person:
 * - two people in a room see each other in the list of who is online (presence), each other's
 *   messages, the history on entry, the join notice; one leaves and the other sees it go — over
 *   WebSocket, and with ?transport=poll;
 * - closing the tab is a leave too;
 * - the nickname cannot be spoofed: a forged token is refused, the nickname comes from the token,
 *   and clients cannot publish to a room themselves.
 * With HERALD_SCREENSHOTS=1 it writes docs/img/demo-chat.png (and 400 px wide ones to /tmp).
 * Skipped when Chromium is not installed, except in CI (CI=true), where that fails.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPresent, until } from '@herald/test-support';
import { DemoBrowser, seen, startOneDemo, visibleText, type DemoServer } from './support/demo-server.js';

/** What the functions run in the page (page.evaluate) use of its globals (no DOM library here). */
declare const window: { Herald: new (url: string, opts: object) => any };
declare const location: { origin: string };

const ci = process.env['CI'] === 'true';
const shots = process.env['HERALD_SCREENSHOTS'] === '1';
const SECRET = 'demo-chat-hmac-secret-0123456789';
const APP = '/demo/chat';

describe.skipIf(!chromiumPresent && !ci)('Chat demo in headless Chromium', () => {
  let herald: DemoServer;
  let site: string;
  const browser = new DemoBrowser();

  beforeAll(async () => {
    await browser.launch();
    herald = await startOneDemo('chat', SECRET);
    site = herald.url;
  }, 60_000);

  afterEach(async () => {
    expect(await browser.reset()).toEqual([]);
  });

  afterAll(async () => {
    await browser.close();
    await herald?.close();
  });

  // ---- helpers ----------------------------------------------------------------------------------

  /** A browser of its own, on the page (`hash`: a room to go to), signed in as `nick`. */
  async function person(nick: string, query = '', hash = ''): Promise<{ ctx: BrowserContext; page: Page }> {
    const { ctx, page } = await browser.person();
    await page.goto(`${site}${APP}/${query}${hash}`);
    await until(async () => (await visible(page, '#login')) === true, `${nick}: the nickname form`);
    await page.fill('#nick', nick);
    await page.click('#login-form button');
    await seen(page, '#conn', 'live', `${nick}: connected`);
    return { ctx, page };
  }

  const visible = async (page: Page, sel: string): Promise<boolean> => (await visibleText(page, sel)) !== null;

  const texts = (page: Page, sel: string): Promise<string[]> =>
    page.$$eval(sel, (els) => els.map((e) => (e.textContent ?? '').trim()));

  /** Waits until the list's texts are exactly `want` (in any order). */
  async function list(page: Page, sel: string, want: string[], what: string): Promise<void> {
    let last: string[] = [];
    await until(
      async () => {
        last = (await texts(page, sel)).sort();
        return JSON.stringify(last) === JSON.stringify([...want].sort());
      },
      what,
      15_000,
      25,
    ).catch((err: Error) => {
      throw new Error(`${err.message} (${sel}: ${JSON.stringify(last)})`);
    });
  }

  /** Waits for a message `nick: text` in the room. */
  async function message(page: Page, nick: string, text: string, what: string): Promise<void> {
    await until(
      async () =>
        (
          await page.$$eval('#messages .msg', (ms) =>
            ms.map((m) => `${m.querySelector('.nick')?.textContent}: ${m.querySelector('.text')?.textContent}`),
          )
        ).includes(`${nick}: ${text}`),
      what,
      15_000,
      25,
    );
  }

  const events = (page: Page): Promise<string[]> => texts(page, '#messages .event');

  async function say(page: Page, text: string): Promise<void> {
    await page.fill('#text', text);
    await page.click('#say button');
  }

  // ---- tests ------------------------------------------------------------------------------------

  describe.each([
    ['WebSocket', '', 'websocket'],
    ['?transport=poll', '?transport=poll', 'long-poll'],
  ])('over %s', (_name, query, transport) => {
    it('two people see each other online and each other’s messages; one leaves, the other sees it', async () => {
      const room = transport === 'websocket' ? 'general' : 'random';
      const ann = (await person('Ann', query)).page;
      await ann.click(`#rooms a[href="#${room}"]`);
      await seen(ann, '#room-title', `#${room}`, 'Ann in the room');
      await until(async () => (await events(ann)).includes(`You joined #${room}`), 'Ann joined');
      expect(await texts(ann, '#transport')).toEqual([`Connected over ${transport}.`]);
      await say(ann, 'first!');
      await message(ann, 'Ann', 'first!', 'Ann sees her message');

      // Bob comes in: the history, both online, the join notice.
      const bob = (await person('Bob', query, `#${room}`)).page;
      await seen(bob, '#room-title', `#${room}`, 'Bob in the room');
      await message(bob, 'Ann', 'first!', 'Bob sees the history');
      await list(bob, '#online .nick', ['Ann', 'Bob'], 'Bob sees Ann and himself online');
      await list(ann, '#online .nick', ['Ann', 'Bob'], 'Ann sees Bob online');
      await until(async () => (await events(ann)).includes('Bob joined'), 'Ann sees Bob join');
      await seen(ann, '#online-count', '2 online', 'Ann: 2 online');

      // Messages both ways.
      await say(bob, 'hi Ann');
      await message(ann, 'Bob', 'hi Ann', 'Ann gets Bob’s message');
      await say(ann, 'hello Bob');
      await message(bob, 'Ann', 'hello Bob', 'Bob gets Ann’s message');
      expect(await texts(bob, '#messages .msg.mine .text')).toEqual(['hi Ann']);

      // The rooms list (the server API's channels, with presence counts).
      const rooms = ((await (await fetch(`${site}${APP}/api/rooms`)).json()) as any).rooms;
      expect(rooms.find((r: { name: string }) => r.name === room)).toMatchObject({ online: 2 });
      await seen(ann, `#rooms li[data-room="${room}"] .badge`, '2', 'the room’s badge');

      if (shots && transport === 'websocket') {
        await say(bob, 'the list on the right is presence; these lines are the history');
        await message(ann, 'Bob', 'the list on the right is presence; these lines are the history', 'the last one');
        await ann.screenshot({ path: 'docs/img/demo-chat.png' });
        await bob.setViewportSize({ width: 400, height: 700 });
        await bob.screenshot({ path: '/tmp/demo-chat-400.png' });
      }

      // Bob leaves: Ann sees him go.
      await bob.click('#leave');
      await until(async () => (await visible(bob, '#pick')) === true, 'Bob back to picking a room');
      await until(async () => (await events(ann)).includes('Bob left'), 'Ann sees Bob leave');
      await list(ann, '#online .nick', ['Ann'], 'only Ann online');
      await seen(ann, '#online-count', '1 online', 'Ann: 1 online');
    }, 90_000);
  });

  it('closing the tab is a leave', async () => {
    const ann = (await person('Ann', '', '#help')).page;
    const bob = await person('Bob', '', '#help');
    await list(ann, '#online .nick', ['Ann', 'Bob'], 'Ann sees Bob online');
    if (shots) {
      await ann.setViewportSize({ width: 400, height: 700 });
      await ann.screenshot({ path: '/tmp/demo-chat-400-help.png' });
    }
    await bob.ctx.close();
    await until(async () => (await events(ann)).includes('Bob left'), 'Ann sees Bob go');
    await list(ann, '#online .nick', ['Ann'], 'only Ann online');
  }, 60_000);

  it('cannot be spoofed: a forged token is refused, the nickname comes from the token, clients cannot publish', async () => {
    const say = async (body: object): Promise<{ status: number; body: any }> => {
      const res = await fetch(`${site}${APP}/api/say`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const login = async (nick: string): Promise<any> =>
      (
        await fetch(`${site}${APP}/api/login`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ nick }),
        })
      ).json();
    const eve = await login('Eve');
    const ann = (await person('Ann', '', '#general')).page;
    await seen(ann, '#room-title', '#general', 'Ann in the room');

    const forged = `${eve.token.slice(0, -4)}AAAA`;
    expect((await say({ token: forged, room: 'general', text: 'x' })).status).toBe(401);
    expect((await say({ token: eve.token, room: 'Bad Room', text: 'x' })).body.error.code).toBe('BAD_ROOM');
    expect((await say({ token: eve.token, room: 'general', text: ' ' })).body.error.code).toBe('EMPTY');
    expect((await say({ token: eve.token, room: 'general', text: 'I am Ann', nick: 'Ann' })).status).toBe(200);
    await message(ann, 'Eve', 'I am Ann', 'the message is Eve’s, whatever she claims');

    // Straight to Herald with Eve's token: publishing to a room is refused.
    const code = await ann.evaluate(async (token) => {
      const h = new window.Herald(location.origin, { token });
      try {
        await h.publish('chat.room.general', { type: 'msg', user: 'x', nick: 'Ann', text: 'spoof', at: 0 });
        return 'published';
      } catch (e) {
        return (e as { code: string }).code;
      } finally {
        h.close();
      }
    }, eve.token);
    expect(code).toBe('HERALD_ERR_PERMISSION_DENIED');
  }, 60_000);
});
