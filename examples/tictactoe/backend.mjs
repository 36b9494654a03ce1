// @ts-check
/**
 * TicTacToe's backend: pairs players, enforces the rules, and publishes every game's state to the
 * game's channel through Herald's server API. It keeps no game in memory: a game's state is the
 * last publication of its channel (`ttt.game.<id>`), read back with `history`, and the lobby is
 * rebuilt from `channels` (games someone is subscribed to, with their counts) and the history of
 * `ttt.lobby` (games created, started and ended lately).
 *
 * Every state carries `seq`, the number of changes that led to it; the change from `seq` n is
 * published with the idempotency key `t<n>`, so of two changes made from the same state (two
 * backends, or a move racing a resignation) Herald keeps exactly one, and the other is refused
 * with 409.
 *
 * Endpoints (relative to the app, JSON):
 *   GET  api/config                    { heraldUrl, lobby, prefix }
 *   POST api/join   {name, token?}     { player, name, token }: a Herald connection token (sub = the
 *                                      player id, info = {name}); with a valid `token` (even
 *                                      expired), the same player under a new name
 *   GET  api/lobby                     { games: [{id, status, players, moves, subscribers, clients?, users?}] }
 *   POST api/play   {token}            { game, mark, state }: joins the oldest waiting game, else
 *                                      creates one and waits
 *   POST api/move   {token, game, square}  { state }, or 4xx {error: {code, message}}
 *   POST api/leave  {token, game}      { state }: cancels a waiting game, resigns a running one
 *   GET  api/game?id=<id>              { state }
 */
import { randomBytes } from 'node:crypto';
import { heraldApi, mintToken, verifyToken } from '../shared/herald-api.mjs';
import { HttpError, jsonRoutes, pageHeraldUrl, readObject } from '../shared/http.mjs';

const PREFIX = 'ttt.game.';
const LOBBY = 'ttt.lobby';
const TOKEN_TTL = 7 * 24 * 3600;
/** A waiting game whose creator has been gone this long is cancelled instead of joined. */
const ABANDONED_MS = 15_000;
const LINES = [
  [0, 1, 2],
  [3, 4, 5],
  [6, 7, 8],
  [0, 3, 6],
  [1, 4, 7],
  [2, 5, 8],
  [0, 4, 8],
  [2, 4, 6],
];

export const meta = {
  title: 'TicTacToe',
  description:
    'Two browsers are paired and play; the backend checks every move and publishes it. ' +
    'Close the tab mid-game: opening it again resumes the game from its cursor.',
  namespaces: {
    ttt: { presence: true, joinLeave: true, clientPublish: false, historySize: 100, historyTtl: '1h' },
  },
};

/**
 * @typedef {{ id: string, name: string }} Player
 * @typedef {'waiting' | 'playing' | 'won' | 'draw' | 'cancelled'} Status
 * @typedef {{
 *   game: string, seq: number, status: Status, players: { X: Player, O?: Player },
 *   board: string[], turn: 'X' | 'O' | null, winner: 'X' | 'O' | null, line: number[] | null,
 *   last: { mark: string, square: number } | null, reason?: string, at: number
 * }} GameState
 * @typedef {{ id: string, state: GameState, subscribers?: number, clients?: number, users?: number }} Listed
 */

/**
 * @param {{ heraldUrl: string, publicUrl?: string, apiKey: string, secret: string, base?: string }} opts
 *   `publicUrl`: Herald's URL as pages reach it; '' (demo mode): the page's own origin
 */
export function createBackend({ heraldUrl, publicUrl = '', apiKey, secret }) {
  const api = heraldApi(heraldUrl, apiKey);
  /** Pairing and moves of this process, one at a time (other processes are kept apart by `seq`). */
  let chain = Promise.resolve();
  /**
   * @template T
   * @param {() => Promise<T>} fn
   * @returns {Promise<T>}
   */
  const serial = (fn) => {
    const run = chain.then(fn);
    chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  /** @param {unknown} token */
  function player(token) {
    const claims = verifyToken(secret, token);
    if (claims === undefined || typeof claims.sub !== 'string') {
      throw new HttpError(401, 'BAD_TOKEN', 'Your session is not valid: reload the page');
    }
    const info = /** @type {{ name?: unknown } | undefined} */ (claims.info);
    return { id: claims.sub, name: typeof info?.name === 'string' ? info.name : 'Player' };
  }

  /**
   * The game's state: the last publication of its channel.
   * @param {unknown} id
   * @returns {Promise<GameState>}
   */
  async function load(id) {
    if (typeof id !== 'string' || !/^[a-z0-9]{1,32}$/.test(id)) throw new HttpError(400, 'BAD_GAME', 'No such game');
    const h = await api('history', { channel: PREFIX + id, limit: 1, reverse: true });
    const state = h.publications[0]?.data;
    if (state === undefined) throw new HttpError(404, 'NO_GAME', 'No such game (or it ended long ago)');
    return state;
  }

  /**
   * Publishes the state that follows `prev`; refused (409) when another change from `prev` won.
   * @param {GameState} prev
   * @param {Partial<GameState>} change
   * @returns {Promise<GameState>}
   */
  async function advance(prev, change) {
    const next = { ...prev, ...change, seq: prev.seq + 1, at: Date.now() };
    const r = await api('publish', { channel: PREFIX + prev.game, data: next, idempotencyKey: `t${prev.seq}` });
    if (r.duplicate) throw new HttpError(409, 'CONFLICT', 'The game changed meanwhile: try again');
    if (next.status !== prev.status) await lobbyEvent(next);
    return next;
  }

  /** @param {GameState} s */
  async function lobbyEvent(s) {
    const names = { X: s.players.X.name, O: s.players.O?.name };
    await api('publish', { channel: LOBBY, data: { game: s.game, status: s.status, players: names } }).catch(
      () => undefined,
    );
  }

  /**
   * Games that are waiting or being played: from the channels someone is subscribed to, and from
   * the lobby's recent events.
   * @returns {Promise<Listed[]>}
   */
  async function running() {
    const { replies } = await api('batch', {
      commands: [{ channels: { pattern: `${PREFIX}*` } }, { history: { channel: LOBBY, limit: 100 } }],
    });
    /** @type {Map<string, { subscribers?: number, clients?: number, users?: number }>} */
    const counts = new Map();
    for (const c of replies[0]?.channels?.channels ?? []) {
      const stream = String(c.stream ?? c.channel ?? '');
      const id = stream.slice(PREFIX.length);
      if (!stream.startsWith(PREFIX) || !/^[a-z0-9]+$/.test(id)) continue;
      const p = c.presence ?? c;
      counts.set(id, {
        subscribers: c.subscribers,
        clients: typeof p.clients === 'number' ? p.clients : undefined,
        users: typeof p.users === 'number' ? p.users : undefined,
      });
    }
    /** @type {Set<string>} */
    const ids = new Set(counts.keys());
    for (const p of replies[1]?.history?.publications ?? []) {
      if (p.data?.status === 'waiting' || p.data?.status === 'playing') ids.add(p.data.game);
      else ids.delete(p.data?.game);
    }
    for (const id of counts.keys()) ids.add(id);
    const list = [...ids].slice(0, 200);
    if (list.length === 0) return [];
    const states = await api('batch', {
      commands: list.map((id) => ({ history: { channel: PREFIX + id, limit: 1, reverse: true } })),
    });
    /** @type {Listed[]} */
    const out = [];
    list.forEach((id, i) => {
      const state = states.replies[i]?.history?.publications?.[0]?.data;
      if (state?.status === 'waiting' || state?.status === 'playing') out.push({ id, state, ...counts.get(id) });
    });
    return out.sort((a, b) => a.state.at - b.state.at);
  }

  /**
   * Whether the creator of a waiting game is still there (presence when the namespace keeps it,
   * else the channel's subscribers).
   * @param {Listed} g
   */
  async function creatorPresent(g) {
    if (Date.now() - g.state.at < ABANDONED_MS) return true;
    try {
      const s = await api('presenceStats', { channel: PREFIX + g.id });
      return s.clients > 0;
    } catch {
      return (g.subscribers ?? 1) > 0;
    }
  }

  /** @param {Player} me */
  function play(me) {
    return serial(async () => {
      const games = await running();
      const own = games.find((g) => g.state.status === 'waiting' && g.state.players.X.id === me.id);
      if (own !== undefined) return { game: own.id, mark: 'X', state: own.state };
      for (const g of games) {
        if (g.state.status !== 'waiting') continue;
        if (!(await creatorPresent(g))) {
          await advance(g.state, { status: 'cancelled', reason: 'abandoned' }).catch(() => undefined);
          continue;
        }
        try {
          const state = await advance(g.state, {
            status: 'playing',
            players: { X: g.state.players.X, O: me },
            turn: 'X',
          });
          return { game: g.id, mark: 'O', state };
        } catch (err) {
          if (!(err instanceof HttpError)) throw err; // taken by another backend: try the next one
        }
      }
      const id = randomBytes(5).toString('hex');
      /** @type {GameState} */
      const state = {
        game: id,
        seq: 0,
        status: 'waiting',
        players: { X: me },
        board: Array(9).fill(''),
        turn: null,
        winner: null,
        line: null,
        last: null,
        at: Date.now(),
      };
      await api('publish', { channel: PREFIX + id, data: state, idempotencyKey: 'created' });
      await lobbyEvent(state);
      return { game: id, mark: 'X', state };
    });
  }

  /**
   * @param {Player} me
   * @param {unknown} id
   * @param {unknown} square
   */
  function move(me, id, square) {
    return serial(async () => {
      const s = await load(id);
      const mark = markOf(s, me);
      if (mark === undefined) throw new HttpError(403, 'NOT_A_PLAYER', 'You are not playing in this game');
      if (s.status === 'waiting') throw new HttpError(409, 'NOT_STARTED', 'Wait for an opponent first');
      if (s.status !== 'playing') throw new HttpError(409, 'GAME_OVER', 'The game is over');
      if (!Number.isInteger(square) || /** @type {number} */ (square) < 0 || /** @type {number} */ (square) > 8) {
        throw new HttpError(400, 'BAD_SQUARE', 'Pick a square from 0 to 8');
      }
      const i = /** @type {number} */ (square);
      if (s.turn !== mark) {
        const other = s.players[mark === 'X' ? 'O' : 'X']?.name ?? 'your opponent';
        throw new HttpError(409, 'NOT_YOUR_TURN', `Not your turn: wait for ${other}`);
      }
      if (s.board[i] !== '') throw new HttpError(409, 'SQUARE_TAKEN', 'That square is taken');
      const board = s.board.slice();
      board[i] = mark;
      const line = LINES.find((l) => l.every((k) => board[k] === mark)) ?? null;
      const full = board.every((c) => c !== '');
      return advance(s, {
        board,
        last: { mark, square: i },
        status: line !== null ? 'won' : full ? 'draw' : 'playing',
        winner: line !== null ? mark : null,
        line,
        turn: line !== null || full ? null : mark === 'X' ? 'O' : 'X',
      });
    });
  }

  /**
   * @param {Player} me
   * @param {unknown} id
   */
  function leave(me, id) {
    return serial(async () => {
      const s = await load(id);
      const mark = markOf(s, me);
      if (mark === undefined) throw new HttpError(403, 'NOT_A_PLAYER', 'You are not playing in this game');
      if (s.status === 'waiting') return advance(s, { status: 'cancelled', reason: 'cancelled' });
      if (s.status === 'playing') {
        return advance(s, { status: 'won', winner: mark === 'X' ? 'O' : 'X', turn: null, reason: 'resigned' });
      }
      return s;
    });
  }

  /** @type {Record<string, (req: import('node:http').IncomingMessage) => Promise<unknown>>} */
  const routes = {
    'GET /api/config': async (req) => ({ heraldUrl: pageHeraldUrl(req, publicUrl), lobby: LOBBY, prefix: PREFIX }),
    'POST /api/join': async (req) => {
      const b = await readObject(req);
      const name = cleanName(b.name);
      const old = verifyToken(secret, b.token, { ignoreExpiry: true });
      const id = typeof old?.sub === 'string' ? old.sub : `p-${randomBytes(8).toString('hex')}`;
      return { player: id, name, token: mintToken(secret, { sub: id, info: { name }, ttlSeconds: TOKEN_TTL }) };
    },
    'GET /api/lobby': async () => ({
      games: (await running()).filter(visible).map((g) => ({
        id: g.id,
        status: g.state.status,
        players: { X: g.state.players.X.name, O: g.state.players.O?.name },
        moves: g.state.board.filter((c) => c !== '').length,
        turn: g.state.turn,
        subscribers: g.subscribers ?? 0,
        ...(g.clients === undefined ? {} : { clients: g.clients, users: g.users }),
      })),
    }),
    'POST /api/play': async (req) => play(player((await readObject(req)).token)),
    'POST /api/move': async (req) => {
      const b = await readObject(req);
      return { state: await move(player(b.token), b.game, b.square) };
    },
    'POST /api/leave': async (req) => {
      const b = await readObject(req);
      return { state: await leave(player(b.token), b.game) };
    },
    'GET /api/game': async (req) => ({ state: await load(new URL(req.url ?? '/', 'http://x').searchParams.get('id')) }),
  };

  return { handle: jsonRoutes(routes), close() {} };
}

/**
 * Whether the lobby lists a game: someone is there, or it changed lately (a waiting game whose
 * creator left, a game both players left, are not running any more).
 * @param {Listed} g
 */
function visible(g) {
  const here = g.clients ?? g.subscribers ?? 0;
  const quiet = Date.now() - g.state.at;
  return here > 0 || quiet < (g.state.status === 'waiting' ? ABANDONED_MS : 5 * 60_000);
}

/**
 * @param {GameState} s
 * @param {Player} me
 * @returns {'X' | 'O' | undefined}
 */
function markOf(s, me) {
  if (s.players.X.id === me.id) return 'X';
  if (s.players.O?.id === me.id) return 'O';
  return undefined;
}

/** @param {unknown} v */
function cleanName(v) {
  const name = typeof v === 'string' ? v.replace(/\s+/g, ' ').trim().slice(0, 20) : '';
  return name === '' ? `Player ${Math.floor(1000 + Math.random() * 9000)}` : name;
}
