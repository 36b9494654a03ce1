/**
 * The TicTacToe demo (examples/tictactoe) end to end: Herald serving it under /demo/tictactoe/ (its
 * demo mount: the pages, the example's backend, the SDK bundle), and headless Chromium with one
 * browser context (its own localStorage) per player:
 * - two players are paired and play to a win over WebSocket, the lobby listing the game, and again
 *   with ?transport=poll (long-polling only);
 * - a move out of turn and a move on a taken square are refused by the backend, with a visible message;
 * - a reload, and a tab closed and opened again, continue the game (a move made meanwhile is recovered
 *   from the saved cursor), here to a draw;
 * - the rules over plain HTTP: game over, not a player, a forged token, and two backends racing on
 *   the same game (one move wins, the other is refused).
 * With HERALD_SCREENSHOTS=1 it writes docs/img/demo-tictactoe.png (and a 400 px wide one to /tmp).
 * Skipped when Chromium is not installed, except in CI (CI=true), where that fails.
 */
import { createServer, type Server } from 'node:http';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPresent, until } from '@herald/test-support';
import { API_KEY } from '@herald/test-support/server';
import { createBackend } from '../../../examples/tictactoe/backend.mjs';
import { DemoBrowser, seen, startOneDemo, visibleText, type DemoServer } from './support/demo-server.js';

/** What the functions run in the page (page.evaluate) use of its globals (no DOM library here). */
declare const localStorage: { getItem(key: string): string | null };

const ci = process.env['CI'] === 'true';
const shots = process.env['HERALD_SCREENSHOTS'] === '1';
const SECRET = 'demo-tictactoe-hmac-secret-0123456789';
const APP = '/demo/tictactoe';

describe.skipIf(!chromiumPresent && !ci)('TicTacToe demo in headless Chromium', () => {
  let herald: DemoServer;
  let site: string;
  /** A second backend of the example, on a server of its own, to race the mounted one. */
  let other: ReturnType<typeof createBackend>;
  let otherWeb: Server;
  let otherSite: string;
  const browser = new DemoBrowser();

  beforeAll(async () => {
    await browser.launch();
    herald = await startOneDemo('tictactoe', SECRET);
    site = herald.url;
    other = createBackend({ heraldUrl: site, publicUrl: site, apiKey: API_KEY, secret: SECRET, base: '' });
    otherWeb = createServer((req, res) => {
      void other.handle(req, res, new URL(req.url ?? '/', 'http://x').pathname);
    });
    await new Promise<void>((r) => otherWeb.listen(0, '127.0.0.1', r));
    otherSite = `http://127.0.0.1:${(otherWeb.address() as { port: number }).port}`;
  }, 60_000);

  afterEach(async () => {
    expect(await browser.reset()).toEqual([]);
  });

  afterAll(async () => {
    await browser.close();
    await other?.close();
    await new Promise((r) => (otherWeb ? otherWeb.close(r) : r(undefined)));
    await herald?.close();
  });

  // ---- helpers ----------------------------------------------------------------------------------

  /** A browser of its own (a context: its own localStorage), on the page, in the lobby, named. */
  async function player(name: string, query = '', width = 1000): Promise<{ ctx: BrowserContext; page: Page }> {
    const { ctx, page } = await browser.person(width);
    await page.goto(`${site}${APP}/${query}`);
    await seen(page, '#conn', 'live', `${name}: connected`);
    await page.fill('#name', name);
    return { ctx, page };
  }

  const text = visibleText;

  const board = (page: Page): Promise<string> =>
    page.$$eval('#board .cell', (cells) => cells.map((c) => c.textContent || '.').join(''));

  async function seeBoard(page: Page, want: string, what: string): Promise<void> {
    let last = '';
    await until(async () => (last = await board(page)) === want, `${what}: board ${want} (is ${last})`, 15_000, 25);
  }

  /** Alice presses Play first (she is X), then Bob (O); both see the game start. */
  async function pair(query = ''): Promise<{ alice: Page; bob: Page; aliceCtx: BrowserContext }> {
    const a = await player('Alice', query);
    await a.page.click('#play');
    await seen(a.page, '#status', 'Waiting for an opponent…', 'Alice waits');
    if (shots) await a.page.screenshot({ path: '/tmp/demo-tictactoe-waiting.png' });
    const b = await player('Bob', query);
    await seen(
      b.page,
      '#games li[data-status="waiting"] .names',
      'Alice is waiting for an opponent',
      'Bob sees Alice wait',
    );
    await b.page.click('#play');
    await seen(a.page, '#status', 'Your turn (✕)', 'Alice plays first');
    await seen(b.page, '#status', "Alice's turn", 'Bob waits for Alice');
    return { alice: a.page, bob: b.page, aliceCtx: a.ctx };
  }

  /** `mark` plays `square` on `page`; both pages then show `want`. */
  async function playMove(page: Page, square: number, want: string, others: Page[]): Promise<void> {
    await page.click(`#board .cell[data-i="${square}"]`);
    for (const p of [page, ...others]) await seeBoard(p, want, `after square ${square}`);
  }

  const lobby = async (): Promise<any> => (await fetch(`${site}${APP}/api/lobby`)).json();

  // ---- tests ------------------------------------------------------------------------------------

  it('pairs two browsers over WebSocket, lists the game in the lobby, and plays to a win', async () => {
    const { alice, bob } = await pair();
    expect(await text(alice, '#transport')).toBe('Connected over websocket.');
    // Presence: each sees the other online.
    await until(async () => (await alice.$('#player-O .dot.on')) !== null, 'Alice sees Bob online');
    await until(async () => (await bob.$('#player-X .dot.on')) !== null, 'Bob sees Alice online');

    await playMove(alice, 0, '✕........', [bob]);
    await playMove(bob, 3, '✕..◯.....', [alice]);
    await playMove(alice, 1, '✕✕.◯.....', [bob]);

    // The lobby: the running game, with its subscriber and presence counts, and a spectator.
    const listed = (await lobby()).games.find((g: any) => g.status === 'playing');
    expect(listed).toMatchObject({ players: { X: 'Alice', O: 'Bob' }, moves: 3, turn: 'O' });
    expect(listed.subscribers).toBeGreaterThanOrEqual(2);
    expect(listed.users).toBe(2);
    const carol = await player('Carol');
    await seen(carol.page, `#games li[data-game="${listed.id}"] .meta`, '3 moves · 2 online', 'Carol sees the game');
    await carol.page.click(`#games li[data-game="${listed.id}"] a`);
    await seeBoard(carol.page, '✕✕.◯.....', 'Carol watches');
    await seen(carol.page, '#status', "Bob's turn", 'Carol sees whose turn it is');
    await seen(alice, '#watchers', '1 watching', 'Alice sees a spectator');
    if (shots) {
      await alice.screenshot({ path: 'docs/img/demo-tictactoe.png' });
      await carol.page.setViewportSize({ width: 400, height: 700 });
      await carol.page.screenshot({ path: '/tmp/demo-tictactoe-400.png', fullPage: true });
      await carol.page.click('#back');
      await seen(carol.page, `#games li[data-game="${listed.id}"] .meta`, /online/, 'Carol back in the lobby');
      await carol.page.screenshot({ path: '/tmp/demo-tictactoe-lobby-400.png', fullPage: true });
    }

    await playMove(bob, 4, '✕✕.◯◯....', [alice]);
    await playMove(alice, 2, '✕✕✕◯◯....', [bob]);
    await seen(alice, '#status', 'You won!', 'Alice wins');
    await seen(bob, '#status', 'Alice won', 'Bob sees Alice win');
    expect(await alice.$$eval('.cell.win', (cs) => cs.map((c) => c.getAttribute('data-i')))).toEqual(['0', '1', '2']);
    // Over: out of the lobby's running games; Play again is offered.
    expect((await lobby()).games.find((g: any) => g.id === listed.id)).toBeUndefined();
    expect(await text(bob, '#again')).toBe('Play again');
  }, 90_000);

  it('plays to a win with ?transport=poll: long-polling only, no WebSocket', async () => {
    const { alice, bob } = await pair('?transport=poll');
    expect(await text(alice, '#transport')).toBe('Connected over long-poll.');
    expect(await text(bob, '#transport')).toBe('Connected over long-poll.');
    await playMove(alice, 4, '....✕....', [bob]);
    await playMove(bob, 0, '◯...✕....', [alice]);
    await playMove(alice, 2, '◯.✕.✕....', [bob]);
    await playMove(bob, 6, '◯.✕.✕.◯..', [alice]);
    await playMove(alice, 3, '◯.✕✕✕.◯..', [bob]);
    await playMove(bob, 5, '◯.✕✕✕◯◯..', [alice]);
    await playMove(alice, 8, '◯.✕✕✕◯◯.✕', [bob]);
    await playMove(bob, 1, '◯◯✕✕✕◯◯.✕', [alice]);
    await playMove(alice, 7, '◯◯✕✕✕◯◯✕✕', [bob]);
    await seen(alice, '#status', 'Draw!', 'a draw for Alice');
    await seen(bob, '#status', 'Draw!', 'a draw for Bob');
    // A second game in the same browsers, to a win for O.
    await bob.click('#again');
    await seen(bob, '#status', 'Waiting for an opponent…', 'Bob waits (X this time)');
    await alice.click('#again');
    await seen(bob, '#status', 'Your turn (✕)', 'Bob plays first');
    await playMove(bob, 0, '✕........', [alice]);
    await playMove(alice, 4, '✕...◯....', [bob]);
    await playMove(bob, 8, '✕...◯...✕', [alice]);
    await playMove(alice, 2, '✕.◯.◯...✕', [bob]);
    await playMove(bob, 1, '✕✕◯.◯...✕', [alice]);
    await playMove(alice, 6, '✕✕◯.◯.◯.✕', [bob]);
    await seen(alice, '#status', 'You won!', 'Alice wins as O');
    await seen(bob, '#status', 'Alice won', 'Bob sees it');
    expect(await text(alice, '#transport')).toBe('Connected over long-poll.');
  }, 90_000);

  it('refuses a move out of turn and a move on a taken square, with a visible message', async () => {
    const { alice, bob } = await pair();
    await bob.click('#board .cell[data-i="4"]');
    await seen(bob, '#notice', 'Not your turn: wait for Alice', 'Bob is told it is not his turn');
    await playMove(alice, 0, '✕........', [bob]);
    await bob.click('#board .cell[data-i="0"]');
    await seen(bob, '#notice', 'That square is taken', 'Bob is told the square is taken');
    if (shots) await bob.screenshot({ path: '/tmp/demo-tictactoe-refused.png' });
    expect(await board(bob)).toBe('✕........');
    expect(await board(alice)).toBe('✕........');
    await seen(bob, '#status', 'Your turn (◯)', 'still Bob to play');
    await playMove(bob, 4, '✕...◯....', [alice]);
  }, 60_000);

  it('continues after a reload and after the tab is closed and opened again (a move made meanwhile is recovered)', async () => {
    const { alice, bob, aliceCtx } = await pair();
    await playMove(alice, 0, '✕........', [bob]);
    await playMove(bob, 4, '✕...◯....', [alice]);
    await playMove(alice, 1, '✕✕..◯....', [bob]);
    expect(await alice.evaluate(() => JSON.parse(localStorage.getItem('ttt.game') ?? '{}').cursor)).toMatchObject({
      offset: expect.any(Number),
    });

    // Alice closes her tab; Bob moves; Alice opens the page again: her game, with Bob's move.
    await alice.close();
    await playMove(bob, 2, '✕✕◯.◯....', []);
    const again = browser.watch(await aliceCtx.newPage());
    await again.goto(`${site}${APP}/`);
    await seeBoard(again, '✕✕◯.◯....', 'Alice back, with the move she missed');
    await seen(again, '#status', 'Your turn (✕)', 'Alice to play');
    await playMove(again, 6, '✕✕◯.◯.✕..', [bob]);

    // Bob reloads mid-game.
    await bob.reload();
    await seeBoard(bob, '✕✕◯.◯.✕..', 'Bob after a reload');
    await seen(bob, '#status', 'Your turn (◯)', 'Bob to play after his reload');
    await playMove(bob, 3, '✕✕◯◯◯.✕..', [again]);
    await playMove(again, 5, '✕✕◯◯◯✕✕..', [bob]);
    await playMove(bob, 8, '✕✕◯◯◯✕✕.◯', [again]);
    await playMove(again, 7, '✕✕◯◯◯✕✕✕◯', [bob]);
    await seen(again, '#status', 'Draw!', 'a draw');
    await seen(bob, '#status', 'Draw!', 'a draw for Bob');
  }, 90_000);

  it('keeps the rules over HTTP: game over, not a player, a forged token, two backends racing', async () => {
    const call = async (path: string, body: object, base = `${site}${APP}`): Promise<{ status: number; body: any }> => {
      const res = await fetch(`${base}/api/${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const a = (await call('join', { name: 'Ann' })).body;
    const b = (await call('join', { name: 'Ben' })).body;
    const c = (await call('join', { name: 'Cid' })).body;
    const { game } = (await call('play', { token: a.token })).body;
    expect((await call('play', { token: a.token })).body.game).toBe(game); // her own waiting game, not a second one
    expect((await call('move', { token: a.token, game, square: 0 })).body.error.code).toBe('NOT_STARTED');
    expect((await call('play', { token: b.token })).body).toMatchObject({ game, mark: 'O' });

    expect((await call('move', { token: c.token, game, square: 0 })).status).toBe(403);
    const forged = `${a.token.slice(0, -4)}AAAA`;
    expect((await call('move', { token: forged, game, square: 0 })).body.error.code).toBe('BAD_TOKEN');
    expect((await call('move', { token: a.token, game, square: 9 })).body.error.code).toBe('BAD_SQUARE');

    // Two backends (no state of their own) take the same move at once: Herald keeps one.
    const race = await Promise.all([
      call('move', { token: a.token, game, square: 0 }),
      call('move', { token: a.token, game, square: 8 }, otherSite),
    ]);
    expect(race.map((r) => r.status).sort()).toEqual([200, 409]);
    // Either backend reads the game from Herald's history.
    const one = ((await (await fetch(`${site}${APP}/api/game?id=${game}`)).json()) as any).state;
    const two = ((await (await fetch(`${otherSite}/api/game?id=${game}`)).json()) as any).state;
    expect(two).toEqual(one);
    expect(one.board.filter((x: string) => x === 'X')).toHaveLength(1);

    // B resigns: A wins; no more moves.
    expect((await call('leave', { token: b.token, game })).body.state).toMatchObject({
      status: 'won',
      winner: 'X',
      reason: 'resigned',
    });
    expect((await call('move', { token: b.token, game, square: 4 })).body.error.code).toBe('GAME_OVER');
  }, 30_000);
});
