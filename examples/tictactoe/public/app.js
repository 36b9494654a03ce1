// TicTacToe in the browser: plain JavaScript over the Herald SDK (the global `Herald` of
// ../herald.min.js) and what the demo pages share (`DemoPage`, ../shared/page.js). The page never decides a move: it sends each click to the backend
// (api/move), which checks it and publishes the game's new state to the game's channel; every
// player and spectator subscribed to that channel renders what comes. The player id, the game id
// and the game's cursor stay in localStorage, so a closed tab comes back to its game and gets the
// moves it missed from Herald (subscribe with `since`).
'use strict';
/* global DemoPage */

const { api, el, expiresSoon } = DemoPage;
const store = DemoPage.store('ttt');
const MARKS = { X: '✕', O: '◯' };

const $ = (sel) => document.querySelector(sel);

let cfg;
/** {player, name, token}: who this browser is. */
let me;
let herald;
/** The lobby's subscription while the lobby shows. */
let lobbySub = null;
let lobbyTimer = 0;
let lobbySeq = 0;
/** The game on screen: {id, role: 'player' | 'watch', sub, state, online: Map<client, user>, left: Set<client>}. */
let current = null;

/** The saved identity, or a new one (a new name keeps the player id). */
async function identity(name) {
  const saved = store.get('me');
  if (saved !== null && (name === undefined || name === saved.name) && !expiresSoon(saved.token)) return saved;
  const fresh = await api('join', { name: name ?? saved?.name, token: saved?.token });
  store.set('me', fresh);
  return fresh;
}

function show(view) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== view;
}

const notice = (text) => DemoPage.flash($('#notice'), text);

// ---- lobby ---------------------------------------------------------------------------------------

function showLobby() {
  closeGame();
  show('lobby');
  $('#name').value = me.name;
  if (lobbySub === null) {
    lobbySub = herald.subscribe(cfg.lobby);
    lobbySub.on('publication', () => void refreshLobby());
    lobbySub.on('subscribed', () => void refreshLobby());
  }
  clearInterval(lobbyTimer);
  lobbyTimer = setInterval(() => void refreshLobby(), 5000);
  void refreshLobby();
}

function leaveLobby() {
  clearInterval(lobbyTimer);
  lobbySub?.unsubscribe();
  lobbySub = null;
}

async function refreshLobby() {
  const seq = ++lobbySeq;
  let games;
  try {
    ({ games } = await api('lobby'));
  } catch {
    return;
  }
  if (seq !== lobbySeq || lobbySub === null) return;
  const items = games.map((g) => {
    const online = g.users ?? g.subscribers;
    const names =
      g.status === 'waiting'
        ? el('span', { class: 'names' }, el('b', { text: g.players.X }), ' is waiting for an opponent')
        : el(
            'span',
            { class: 'names' },
            el('b', { text: g.players.X }),
            el('span', { class: 'mark x', text: MARKS.X }),
            ' vs ',
            el('span', { class: 'mark o', text: MARKS.O }),
            el('b', { text: g.players.O }),
          );
    const meta = g.status === 'waiting' ? 'press Play to join' : `${g.moves} moves · ${online} online`;
    return el(
      'li',
      { 'data-game': g.id, 'data-status': g.status },
      names,
      el('span', { class: 'meta', text: meta }),
      g.status === 'playing' ? el('a', { class: 'button', href: `#watch=${g.id}`, text: 'Watch' }) : '',
    );
  });
  $('#games').replaceChildren(...items);
  $('#no-games').hidden = items.length > 0;
}

async function play() {
  const button = $('#play');
  button.disabled = true;
  try {
    const name = $('#name').value.trim();
    if (name !== '' && name !== me.name) {
      me = await identity(name);
      herald.setToken(me.token);
    }
    const r = await api('play', { token: me.token });
    store.set('game', { id: r.game, state: r.state });
    openGame(r.game, 'player', r.state);
  } catch (err) {
    alert(err.message);
  } finally {
    button.disabled = false;
  }
}

// ---- game ----------------------------------------------------------------------------------------

function closeGame() {
  current?.sub.unsubscribe();
  current = null;
}

function openGame(id, role, initial) {
  leaveLobby();
  closeGame();
  show('game');
  $('#notice').hidden = true;
  const g = { id, role, sub: null, state: null, online: new Map(), left: new Set() };
  current = g;
  const saved = role === 'player' ? store.get('game') : null;
  const resume = saved?.id === id ? saved : null;
  const start = resume?.state ?? initial;
  if (start) render(start);
  else $('#board').replaceChildren();
  // Back from a closed tab: only what came after the saved cursor; else the latest state.
  const sub = herald.subscribe(cfg.prefix + id, resume?.cursor ? { since: resume.cursor } : { backlog: 1 });
  g.sub = sub;
  sub.on('publication', (p) => {
    if (current !== g) return;
    render(p.data);
    if (role === 'player' && current.state === p.data) {
      store.set('game', { id, cursor: { epoch: p.epoch, offset: p.offset }, state: p.data });
    }
  });
  sub.on('subscribed', (e) => {
    if (e.recovered === false || g.state === null) void reload(g);
    void loadPresence(g);
  });
  sub.on('join', (e) => {
    g.online.set(e.client, e.user);
    renderPresence();
  });
  sub.on('leave', (e) => {
    g.online.delete(e.client);
    g.left.add(e.client);
    renderPresence();
  });
  sub.on('error', (e) => notice(e.message));
}

/** The state from the backend (which reads it from the channel's history). */
async function reload(g) {
  try {
    const { state } = await api(`game?id=${encodeURIComponent(g.id)}`);
    if (current === g) render(state);
  } catch (err) {
    if (current !== g) return;
    if (g.role === 'player') store.del('game');
    notice(err.message);
  }
}

async function loadPresence(g) {
  g.left.clear();
  try {
    const { presence } = await g.sub.presence();
    if (current !== g) return;
    g.online = new Map([...g.online].filter(([client]) => presence.some((p) => p.client === client)));
    for (const p of presence) if (!g.left.has(p.client)) g.online.set(p.client, p.user);
    $('#game').classList.add('has-presence');
  } catch {
    // no presence on this server: no dots
  }
  renderPresence();
}

function renderPresence() {
  const g = current;
  if (g === null || g.state === null) return;
  const users = new Set(g.online.values());
  const players = g.state.players;
  for (const m of ['X', 'O']) {
    const on = players[m] !== undefined && users.has(players[m].id);
    $(`#player-${m} .dot`).classList.toggle('on', on);
    $(`#player-${m} .dot`).title = on ? 'online' : 'away';
  }
  const watching = [...users].filter((u) => u !== players.X.id && u !== players.O?.id).length;
  $('#watchers').textContent =
    g.state.status === 'waiting' && g.role === 'player'
      ? 'Open this page in another browser to play against yourself.'
      : watching > 0
        ? `${watching} watching`
        : '';
}

function markOf(state, id) {
  if (state.players.X.id === id) return 'X';
  if (state.players.O?.id === id) return 'O';
  return null;
}

function render(s) {
  const g = current;
  if (g === null || (g.state !== null && s.seq < g.state.seq)) return;
  g.state = s;
  const mine = g.role === 'player' ? markOf(s, me.player) : null;
  const name = (m) => (m === mine ? 'You' : (s.players[m]?.name ?? '…'));
  for (const m of ['X', 'O']) {
    const p = $(`#player-${m}`);
    p.querySelector('.who').textContent = s.players[m] ? `${s.players[m].name}${m === mine ? ' (you)' : ''}` : '';
    p.classList.toggle('turn', s.turn === m);
    p.classList.toggle('winner', s.winner === m);
  }
  const over = s.status === 'won' || s.status === 'draw' || s.status === 'cancelled';
  const cells = s.board.map((c, i) =>
    el('button', {
      class: `cell ${c === 'X' ? 'x' : c === 'O' ? 'o' : 'free'}${s.line?.includes(i) ? ' win' : ''}${
        s.last?.square === i ? ' last' : ''
      }`,
      'data-i': String(i),
      'aria-label': `square ${i + 1}: ${c === '' ? 'empty' : c}`,
      disabled: g.role !== 'player' || over,
      text: MARKS[c] ?? '',
    }),
  );
  cells.forEach((c, i) => c.addEventListener('click', () => void move(i)));
  $('#board').replaceChildren(...cells);
  $('#board').classList.toggle('my-turn', mine !== null && s.turn === mine);

  let text;
  if (s.status === 'waiting') text = mine ? 'Waiting for an opponent…' : `${name('X')} is waiting for an opponent`;
  else if (s.status === 'playing') text = s.turn === mine ? `Your turn (${MARKS[mine]})` : `${name(s.turn)}'s turn`;
  else if (s.status === 'won') {
    const loser = s.winner === 'X' ? 'O' : 'X';
    const head = s.winner === mine ? 'You won!' : `${name(s.winner)} won`;
    text = s.reason === 'resigned' ? `${head}: ${loser === mine ? 'you' : name(loser)} resigned` : head;
  } else if (s.status === 'draw') text = 'Draw!';
  else text = 'The game was cancelled';
  const status = $('#status');
  status.textContent = text;
  status.dataset.status = s.status;
  status.classList.toggle('good', s.status === 'won' && s.winner === mine);

  const playing = g.role === 'player' && !over;
  $('#again').hidden = g.role !== 'player' || !over;
  $('#leave').hidden = !playing;
  $('#leave').textContent = s.status === 'waiting' ? 'Cancel' : 'Resign';
  $('#back').hidden = playing;
  renderPresence();
}

async function move(square) {
  const g = current;
  if (g === null || g.role !== 'player') return;
  try {
    const { state } = await api('move', { token: me.token, game: g.id, square });
    if (current === g) render(state);
  } catch (err) {
    if (current === g) notice(err.message);
  }
}

async function leaveGame() {
  const g = current;
  if (g === null) return;
  try {
    const { state } = await api('leave', { token: me.token, game: g.id });
    if (state.status === 'cancelled') toLobby();
    else if (current === g) render(state);
  } catch (err) {
    notice(err.message);
  }
}

function toLobby() {
  if (current?.role === 'player') store.del('game');
  if (location.hash !== '') history.replaceState(null, '', location.pathname + location.search);
  showLobby();
}

function route() {
  const watch = /^#watch=([a-z0-9]+)$/.exec(location.hash)?.[1];
  const saved = store.get('game');
  if (watch !== undefined) openGame(watch, 'watch');
  else if (saved !== null) openGame(saved.id, 'player');
  else showLobby();
}

async function main() {
  cfg = await api('config');
  me = await identity();
  herald = DemoPage.connect(cfg, { token: me.token });
  $('#play-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void play();
  });
  $('#again').addEventListener('click', () => {
    store.del('game');
    void play();
  });
  $('#leave').addEventListener('click', () => void leaveGame());
  $('#back').addEventListener('click', toLobby);
  window.addEventListener('hashchange', route);
  route();
}

main().catch((err) => {
  document.body.prepend(el('p', { class: 'fatal', role: 'alert', text: `Cannot start: ${err.message}` }));
});
