// @ts-check
/**
 * Chat's backend: gives each visitor a Herald connection token carrying their nickname, lists the
 * rooms, and publishes what people say. It stores nothing: the messages are the history of each
 * room's channel (`chat.room.<name>`), who is online is the channel's presence (from the token's
 * `info`), and the rooms are the default ones plus those someone is in (`channels`).
 *
 * Clients cannot publish (`clientPublish: false`): every message goes through `api/say`, which
 * takes the nickname from the verified token, so nobody can speak under another name.
 *
 * Endpoints (relative to the app, JSON):
 *   GET  api/config                     { heraldUrl, prefix, rooms }
 *   POST api/login  {nick, token?}      { user, nick, token }: sub = the user id, info = {nick}; with
 *                                       a valid `token` (even expired), the same user under a new nick
 *   GET  api/rooms                      { rooms: [{name, online, clients}] }
 *   POST api/say    {token, room, text} { offset }, or 4xx {error: {code, message}}
 */
import { randomBytes } from 'node:crypto';
import { heraldApi, mintToken, verifyToken } from '../shared/herald-api.mjs';
import { HttpError, jsonRoutes, pageHeraldUrl, readObject } from '../shared/http.mjs';

const PREFIX = 'chat.room.';
const ROOMS = ['general', 'random', 'help'];
const TOKEN_TTL = 7 * 24 * 3600;
const MAX_TEXT = 500;
const ROOM = /^[a-z0-9][a-z0-9-]{0,23}$/;

export const meta = {
  title: 'Chat',
  description:
    'Rooms with nicknames: who is online (presence), join and leave notices, and the latest messages on entry.',
  namespaces: {
    chat: { presence: true, joinLeave: true, clientPublish: false, historySize: 100, historyTtl: '1h' },
  },
};

/**
 * @param {{ heraldUrl: string, publicUrl?: string, apiKey: string, secret: string, base?: string }} opts
 *   `publicUrl`: Herald's URL as pages reach it; '' (demo mode): the page's own origin
 */
export function createBackend({ heraldUrl, publicUrl = '', apiKey, secret }) {
  const api = heraldApi(heraldUrl, apiKey);

  /** @param {unknown} token */
  function speaker(token) {
    const claims = verifyToken(secret, token);
    const info = /** @type {{ nick?: unknown } | undefined} */ (claims?.info);
    if (claims === undefined || typeof claims.sub !== 'string' || typeof info?.nick !== 'string') {
      throw new HttpError(401, 'BAD_TOKEN', 'Your session is not valid: reload the page');
    }
    return { user: claims.sub, nick: info.nick };
  }

  /** @param {unknown} v */
  function room(v) {
    if (typeof v !== 'string' || !ROOM.test(v)) {
      throw new HttpError(400, 'BAD_ROOM', 'A room name is 1-24 lowercase letters, digits or dashes');
    }
    return v;
  }

  /** The default rooms, then every room someone is in, with who is online. */
  async function rooms() {
    const { channels } = await api('channels', { pattern: `${PREFIX}*` });
    /** @type {Map<string, { name: string, online: number, clients: number }>} */
    const out = new Map(ROOMS.map((name) => [name, { name, online: 0, clients: 0 }]));
    for (const c of channels) {
      const stream = String(c.stream ?? c.channel ?? '');
      const name = stream.slice(PREFIX.length);
      if (!stream.startsWith(PREFIX) || !ROOM.test(name)) continue;
      const p = c.presence ?? c;
      const clients = typeof p.clients === 'number' ? p.clients : (c.subscribers ?? 0);
      out.set(name, { name, online: typeof p.users === 'number' ? p.users : clients, clients });
    }
    return [...out.values()];
  }

  /** @type {Record<string, (req: import('node:http').IncomingMessage) => Promise<unknown>>} */
  const routes = {
    'GET /api/config': async (req) => ({ heraldUrl: pageHeraldUrl(req, publicUrl), prefix: PREFIX, rooms: ROOMS }),
    'POST /api/login': async (req) => {
      const b = await readObject(req);
      const nick = typeof b.nick === 'string' ? b.nick.replace(/\s+/g, ' ').trim().slice(0, 24) : '';
      if (nick === '') throw new HttpError(400, 'BAD_NICK', 'Choose a nickname');
      const old = verifyToken(secret, b.token, { ignoreExpiry: true });
      const user = typeof old?.sub === 'string' ? old.sub : `u-${randomBytes(8).toString('hex')}`;
      return { user, nick, token: mintToken(secret, { sub: user, info: { nick }, ttlSeconds: TOKEN_TTL }) };
    },
    'GET /api/rooms': async () => ({ rooms: await rooms() }),
    'POST /api/say': async (req) => {
      const b = await readObject(req);
      const who = speaker(b.token);
      const name = room(b.room);
      const text = typeof b.text === 'string' ? b.text.trim() : '';
      if (text === '') throw new HttpError(400, 'EMPTY', 'Say something');
      if (text.length > MAX_TEXT) throw new HttpError(400, 'TOO_LONG', `At most ${MAX_TEXT} characters`);
      const msg = { type: 'msg', user: who.user, nick: who.nick, text, at: Date.now() };
      const r = await api('publish', { channel: PREFIX + name, data: msg });
      return { offset: r.offset };
    },
  };

  return { handle: jsonRoutes(routes), close() {} };
}
