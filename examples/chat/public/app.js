// Chat in the browser: plain JavaScript over the Herald SDK (the global `Herald` of
// ../herald.min.js) and what the demo pages share (`DemoPage`, ../shared/page.js). A room is a channel, `chat.room.<name>`: entering subscribes with a backlog
// (the latest messages), who is online is the channel's presence (each entry carries the nickname
// from the connection token's `info`), and the subscription's `join` and `leave` events keep that
// list current and write the notices. Messages are sent to the backend (api/say), which stamps the
// nickname from the verified token and publishes; clients cannot publish themselves.
'use strict';
/* global DemoPage */

const { api, el, expiresSoon } = DemoPage;
const store = DemoPage.store('chat');
const ROOM = /^[a-z0-9][a-z0-9-]{0,23}$/;
const BACKLOG = 50;

const $ = (sel) => document.querySelector(sel);

const COLORS = ['#2563eb', '#db2777', '#059669', '#7c3aed', '#ea580c', '#0891b2', '#b91c1c', '#4f46e5'];

/** A stable color per user id, so a nickname keeps its color. */
function color(user) {
  let h = 0;
  for (const c of user) h = (h * 31 + c.charCodeAt(0)) % 9973;
  return COLORS[h % COLORS.length];
}

const time = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit' });

let cfg;
/** {user, nick, token}: who this browser is. */
let me = null;
let herald = null;
/** The room on screen: {name, sub, clients: Map<client, {user, nick}>, left: Set<client>, entered}. */
let room = null;

function show(panel) {
  for (const id of ['login', 'pick', 'chat']) $(`#${id}`).hidden = id !== panel;
}

const showError = (text) => DemoPage.flash($('#error'), text);

// ---- rooms ---------------------------------------------------------------------------------------

async function refreshRooms() {
  let rooms;
  try {
    ({ rooms } = await api('rooms'));
  } catch {
    return;
  }
  const items = rooms.map((r) =>
    el(
      'li',
      { 'data-room': r.name },
      el(
        'a',
        { href: `#${r.name}`, 'aria-current': room?.name === r.name ? 'page' : undefined },
        el('span', { class: 'hash', text: '#' }),
        el('span', { class: 'name', text: r.name }),
        r.online > 0 ? el('span', { class: 'badge', text: String(r.online), title: `${r.online} online` }) : '',
      ),
    ),
  );
  $('#rooms').replaceChildren(...items);
}

function markRoom() {
  for (const a of document.querySelectorAll('#rooms a')) {
    if (a.closest('li').dataset.room === room?.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function route() {
  const wanted = decodeURIComponent(location.hash.slice(1)) || store.get('room') || '';
  if (me === null) return;
  if (ROOM.test(wanted)) {
    if (room?.name !== wanted) enterRoom(wanted);
  } else {
    leaveRoom();
    show('pick');
  }
}

// ---- a room --------------------------------------------------------------------------------------

function enterRoom(name) {
  leaveRoom();
  const r = { name, sub: null, clients: new Map(), left: new Set(), entered: false };
  room = r;
  store.set('room', name);
  if (location.hash !== `#${name}`) history.replaceState(null, '', `${location.pathname}${location.search}#${name}`);
  show('chat');
  $('#room-title').textContent = `#${name}`;
  $('#text').placeholder = `Message #${name}`;
  $('#messages').replaceChildren();
  $('#error').hidden = true;
  renderOnline();
  markRoom();
  // The latest messages first (history on entry), then live ones; after a reconnect the SDK
  // resumes from its cursor, so nothing is shown twice.
  const sub = herald.subscribe(cfg.prefix + name, { backlog: BACKLOG });
  r.sub = sub;
  sub.on('publication', (p) => {
    if (room === r && p.data?.type === 'msg') addMessage(p.data);
  });
  sub.on('subscribed', () => {
    if (room !== r) return;
    if (!r.entered) {
      r.entered = true;
      // After the backlog, which is delivered right after this event.
      queueMicrotask(() => room === r && addEvent(`You joined #${name}`, 'self'));
    }
    void loadPresence(r);
  });
  sub.on('join', (e) => {
    if (room !== r) return;
    const was = online(r, e.user);
    r.clients.set(e.client, { user: e.user, nick: nickOf(e) });
    if (!was && e.user !== me.user) addEvent(`${nickOf(e)} joined`, 'join');
    renderOnline();
  });
  sub.on('leave', (e) => {
    if (room !== r) return;
    r.clients.delete(e.client);
    r.left.add(e.client);
    if (!online(r, e.user) && e.user !== me.user) addEvent(`${nickOf(e)} left`, 'leave');
    renderOnline();
  });
  sub.on('error', (e) => showError(e.message));
  $('#text').focus();
}

function leaveRoom() {
  room?.sub?.unsubscribe();
  room = null;
  markRoom();
}

const nickOf = (entry) => (typeof entry.info?.nick === 'string' ? entry.info.nick : 'someone');
const online = (r, user) => [...r.clients.values()].some((c) => c.user === user);

/** Who is in the room now (after each subscribe: on entry and after a reconnect). */
async function loadPresence(r) {
  r.left.clear();
  try {
    const { presence } = await r.sub.presence();
    if (room !== r) return;
    const joined = new Map([...r.clients].filter(([client]) => !presence.some((p) => p.client === client)));
    r.clients = new Map();
    for (const p of presence) if (!r.left.has(p.client)) r.clients.set(p.client, { user: p.user, nick: nickOf(p) });
    for (const [client, c] of joined) if (!r.left.has(client)) r.clients.set(client, c);
  } catch (err) {
    showError(`Who is online is not available: ${err.message}`);
  }
  renderOnline();
}

function renderOnline() {
  const r = room;
  const users = new Map();
  if (r !== null) for (const c of r.clients.values()) users.set(c.user, c.nick);
  if (r !== null && !users.has(me.user)) users.set(me.user, me.nick);
  const list = [...users].sort(([ua, a], [ub, b]) => (ua === me.user ? -1 : ub === me.user ? 1 : a.localeCompare(b)));
  $('#online').replaceChildren(
    ...list.map(([user, nick]) =>
      el(
        'li',
        { 'data-user': user, style: `--nick: ${color(user)}` },
        el('i', { class: 'dot' }),
        el('span', { class: 'nick', text: nick }),
        user === me.user ? el('span', { class: 'you', text: ' (you)' }) : '',
      ),
    ),
  );
  $('#online-count').textContent = r === null ? '' : `${users.size} online`;
  const badge = document.querySelector(`#rooms li[data-room="${r?.name}"] .badge`);
  if (badge) badge.textContent = String(users.size);
}

function atBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function append(item) {
  const list = $('#messages');
  const follow = atBottom(list);
  list.append(item);
  if (follow) list.scrollTop = list.scrollHeight;
}

function addMessage(m) {
  append(
    el(
      'li',
      { class: `msg${m.user === me.user ? ' mine' : ''}`, style: `--nick: ${color(m.user)}` },
      el(
        'div',
        { class: 'line' },
        el('span', { class: 'nick', text: m.nick }),
        el('time', { datetime: new Date(m.at).toISOString(), text: time.format(m.at) }),
      ),
      el('div', { class: 'text', text: m.text }),
    ),
  );
}

function addEvent(text, kind) {
  append(el('li', { class: `event ${kind}`, text }));
}

async function say(e) {
  e.preventDefault();
  const input = $('#text');
  const text = input.value.trim();
  if (text === '' || room === null) return;
  try {
    await api('say', { token: me.token, room: room.name, text });
    input.value = '';
  } catch (err) {
    showError(err.message);
  }
  input.focus();
}

// ---- who am I ------------------------------------------------------------------------------------

function showLogin() {
  leaveRoom();
  show('login');
  $('#nick').value = me?.nick ?? '';
  $('#nick').focus();
}

async function login(e) {
  e.preventDefault();
  try {
    me = await api('login', { nick: $('#nick').value, token: me?.token });
  } catch (err) {
    alert(err.message);
    return;
  }
  store.set('me', me);
  $('#me-nick').textContent = me.nick;
  $('#me').hidden = false;
  if (herald === null) connect();
  else herald.setToken(me.token);
  route();
}

function connect() {
  herald = DemoPage.connect(cfg, { token: me.token });
}

async function main() {
  cfg = await api('config');
  me = store.get('me');
  if (me !== null && expiresSoon(me.token)) {
    me = await api('login', { nick: me.nick, token: me.token }).catch(() => null);
    if (me !== null) store.set('me', me);
  }
  $('#login-form').addEventListener('submit', (e) => void login(e));
  $('#say').addEventListener('submit', (e) => void say(e));
  $('#leave').addEventListener('click', () => {
    leaveRoom();
    store.del('room');
    history.replaceState(null, '', `${location.pathname}${location.search}`);
    show('pick');
    void refreshRooms();
  });
  $('#rename').addEventListener('click', showLogin);
  $('#new-room').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('#room-name').value.trim().toLowerCase();
    if (!ROOM.test(name)) return;
    $('#room-name').value = '';
    location.hash = name;
  });
  window.addEventListener('hashchange', route);
  void refreshRooms();
  setInterval(() => void refreshRooms(), 5000);
  if (me === null) {
    showLogin();
    return;
  }
  $('#me-nick').textContent = me.nick;
  $('#me').hidden = false;
  connect();
  route();
}

main().catch((err) => {
  document.body.prepend(el('p', { class: 'fatal', role: 'alert', text: `Cannot start: ${err.message}` }));
});
