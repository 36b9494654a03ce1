// What the demo pages share, as the global `DemoPage`: a plain script that each page loads after
// ../herald.min.js and before its own app.js, as `../shared/page.js` (under /demo/<name>/ Herald
// serves it from examples/shared/public/; run on its own, examples/shared/serve-example.mjs does).
// - `?transport=`: `connect` forces the transport it names, `transportSwitch` renders links to each;
// - `connect`: the Herald client, whose connection the page shows (the top bar's `#conn` on TicTacToe
//   and Chat, the toolbar's `#status` on Progress and Ticker; `#transport` once connected);
// - `api` and `json`: the page's backend (its `api/`), with its error messages;
// - `el`, `flash`, `store`, `expiresSoon`: small DOM, localStorage and token helpers.
'use strict';

window.DemoPage = (() => {
  /** What `?transport=` may force, by its key or by the SDK's name: that transport only, no fallback. */
  const TRANSPORTS = [
    { key: 'ws', label: 'WebSocket', names: ['websocket'] },
    { key: 'stream', label: 'Stream', names: ['http-stream'] },
    { key: 'sse', label: 'SSE', names: ['sse'] },
    { key: 'poll', label: 'Long-poll', names: ['long-poll'] },
  ];
  const wanted = new URLSearchParams(location.search).get('transport') ?? '';
  /** The transport the URL forces, or undefined: the page's default order. */
  const forced = TRANSPORTS.find((t) => t.key === wanted || t.names[0] === wanted);

  /**
   * Fills `nav` with links that reload the page with another `?transport=` (the rest of the query
   * kept), the current one marked; "Auto" (no `?transport=`) first, with `autoTitle` as its tooltip.
   */
  function transportSwitch(nav, autoTitle) {
    nav.replaceChildren();
    for (const t of [{ key: '', label: 'Auto', title: autoTitle }, ...TRANSPORTS]) {
      const next = new URLSearchParams(location.search);
      if (t.key === '') next.delete('transport');
      else next.set('transport', t.key);
      const a = document.createElement('a');
      a.textContent = t.label;
      a.href = `?${next}`;
      if (t.title) a.title = t.title;
      if (t === forced || (t.key === '' && forced === undefined)) a.setAttribute('aria-current', 'true');
      nav.append(a);
    }
  }

  /** The toolbar's connection status (`#status`: a dot, then a text). */
  function showStatus(state, text) {
    const status = document.getElementById('status');
    status.dataset.state = state;
    status.lastElementChild.textContent = text;
  }

  /**
   * A Herald client at `config.heraldUrl` (what the backend's api/config answered; else this origin)
   * with `options` (`transports` is the page's default order), on the transport `?transport=` forces
   * if any. The page shows its connection: in the top bar's `#conn` when it has one, else in the
   * toolbar's `#status`; and its transport in `#transport`.
   */
  function connect(config, options = {}) {
    const herald = new Herald(
      config.heraldUrl || location.origin,
      forced ? { ...options, transports: forced.names } : options,
    );
    const conn = document.getElementById('conn');
    const transport = document.getElementById('transport');
    if (conn !== null) {
      const show = () => {
        const connected = herald.state === 'connected';
        conn.dataset.state = herald.state;
        conn.textContent = connected ? 'live' : herald.state;
        transport.textContent = connected ? `Connected over ${herald.transport}.` : '';
      };
      herald.on('state', show);
      herald.on('connected', show);
    } else {
      herald.on('state', (s) => {
        if (s.state === 'connected') return;
        const why = s.error ? `: ${s.error.message}` : '';
        showStatus(s.state, s.state === 'connecting' ? `Connecting…${why}` : `${s.state}${why}`);
      });
      herald.on('connected', (e) => {
        showStatus('connected', 'Connected');
        transport.textContent = e.transport;
      });
    }
    return herald;
  }

  /** The JSON of the backend's answer; rejects with its error message (and `code`) when it is not 2xx. */
  async function json(res) {
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = new Error(data.error?.message ?? `The server answered ${res.status}`);
      e.code = data.error?.code;
      throw e;
    }
    return data;
  }

  /** GET (no body) or POST (JSON body) to the backend's `api/<path>`; rejects as `json` does. */
  async function api(path, body) {
    const init =
      body === undefined
        ? { cache: 'no-store' }
        : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    return json(await fetch(`api/${path}`, init));
  }

  /** An element with attributes (`class`, `text`, others as attributes) and children. */
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    e.append(...children);
    return e;
  }

  /** The timer that hides each element `flash` showed. */
  const flashes = new WeakMap();

  /** Shows `text` in `element` (unhidden) for six seconds. */
  function flash(element, text) {
    element.textContent = text;
    element.hidden = false;
    clearTimeout(flashes.get(element));
    const hide = () => (element.hidden = true);
    flashes.set(element, setTimeout(hide, 6000));
  }

  /** JSON values in localStorage under `<prefix>.<key>` (null when absent or unreadable). */
  function store(prefix) {
    return {
      get(key) {
        try {
          return JSON.parse(localStorage.getItem(`${prefix}.${key}`) ?? 'null');
        } catch {
          return null;
        }
      },
      set: (key, value) => localStorage.setItem(`${prefix}.${key}`, JSON.stringify(value)),
      del: (key) => localStorage.removeItem(`${prefix}.${key}`),
    };
  }

  /** Whether a connection token (a JWT) expires within the hour, or cannot be read. */
  function expiresSoon(token) {
    try {
      const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return claims.exp * 1000 < Date.now() + 3600_000;
    } catch {
      return true;
    }
  }

  return { transportSwitch, showStatus, connect, json, api, el, flash, store, expiresSoon };
})();
