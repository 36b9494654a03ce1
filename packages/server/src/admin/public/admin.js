/*
 * The admin page (served at /admin/ by packages/server/src/admin/admin.ts). Plain browser script, no
 * build step; uPlot (uPlot.iife.min.js, served by Herald) draws the charts.
 *
 * Everything shown that comes from the server (channel names, user ids, payloads) goes into the page
 * with textContent or as attribute-free text nodes: never as HTML.
 */
'use strict';

(() => {
  const API = '/admin/api/';
  /** Samples kept per node (ten minutes at the default 2 s interval). */
  const KEEP = 300;
  const TRANSPORT_COLORS = { websocket: '#2f6fed', sse: '#15803d', 'http-stream': '#d97706', 'long-poll': '#9333ea' };
  const NODE_COLORS = ['#2f6fed', '#e8590c', '#0ca678', '#ae3ec9', '#f59f00', '#1098ad', '#d6336c', '#5c940d'];

  const state = {
    csrf: '',
    interval: 2000,
    selfNode: '',
    /** node id → { self, up, latest, samples: [] } */
    nodes: new Map(),
    /** node id → its color */
    colors: new Map(),
    charts: {},
    chartKeys: {},
    selected: '',
    inspected: '',
  };

  // ---- helpers ---------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** An element with text content (never HTML) and optional class. */
  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }

  function cell(text, className) {
    return el('td', text, className);
  }

  class ApiError extends Error {
    constructor(status, error) {
      super(error && error.message ? error.message : `HTTP ${status}`);
      this.status = status;
      this.code = error && error.code ? error.code : 'HTTP_' + status;
    }
  }

  async function api(path, body) {
    const init = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.headers['X-Herald-CSRF'] = state.csrf;
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path.startsWith('/') ? path : API + path, init);
    if (res.status === 401) {
      location.assign('/admin/login');
      throw new ApiError(401, { code: 'HERALD_ERR_ADMIN_UNAUTHORIZED', message: 'logged out' });
    }
    let json;
    try {
      json = await res.json();
    } catch {
      json = undefined;
    }
    if (!res.ok) throw new ApiError(res.status, json && json.error);
    return json;
  }

  const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const dec = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  function num(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
    return Math.abs(n) >= 100 || Number.isInteger(n) ? int.format(n) : dec.format(n);
  }

  function bytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${i === 0 ? int.format(n) : dec.format(n)} ${units[i]}`;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function since(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function sumConnections(sample) {
    let n = 0;
    for (const v of Object.values(sample.connections || {})) n += v;
    return n;
  }

  function showBanner(text) {
    const b = $('banner');
    b.textContent = text;
    b.hidden = text === '';
  }

  function emptyRow(tbody, columns, text) {
    const tr = document.createElement('tr');
    const td = cell(text, 'empty');
    td.colSpan = columns;
    tr.append(td);
    tbody.append(tr);
  }

  function colorOf(node) {
    let c = state.colors.get(node);
    if (c === undefined) {
      c = NODE_COLORS[state.colors.size % NODE_COLORS.length];
      state.colors.set(node, c);
    }
    return c;
  }

  // ---- overview: charts, figures, nodes ----------------------------------------------------------

  function merge(overview) {
    const seen = new Set();
    for (const n of overview.nodes) {
      seen.add(n.node);
      let entry = state.nodes.get(n.node);
      if (entry === undefined) {
        entry = { samples: [] };
        state.nodes.set(n.node, entry);
      }
      entry.self = n.self;
      entry.up = n.up;
      entry.latest = n.latest;
      const last = entry.samples.length > 0 ? entry.samples[entry.samples.length - 1].t : 0;
      for (const s of n.samples) if (s.t > last) entry.samples.push(s);
      if (entry.samples.length > KEEP) entry.samples.splice(0, entry.samples.length - KEEP);
    }
    for (const node of [...state.nodes.keys()]) if (!seen.has(node)) state.nodes.delete(node);
  }

  /** The oldest of the nodes' latest sample times: asking for newer ones misses none of any node. */
  function sinceParam() {
    let t = Infinity;
    for (const n of state.nodes.values()) {
      const last = n.samples.length > 0 ? n.samples[n.samples.length - 1].t : 0;
      t = Math.min(t, last);
    }
    return Number.isFinite(t) ? t : 0;
  }

  /**
   * uPlot data for `series` (each a function of a node's sample) over `nodes`: x is the sample time
   * in seconds, rounded to the interval so the nodes' samples line up; a node missing a slot keeps
   * its previous value for up to two intervals (sums do not dip when one node reports late).
   */
  function align(nodes, series) {
    const step = state.interval;
    const slots = new Set();
    const perNode = nodes.map((name) => {
      const map = new Map();
      for (const s of state.nodes.get(name)?.samples ?? []) {
        const slot = Math.round(s.t / step) * step;
        map.set(slot, s);
        slots.add(slot);
      }
      return map;
    });
    const xs = [...slots].sort((a, b) => a - b).slice(-KEEP);
    const data = [xs.map((x) => x / 1000)];
    for (const fn of series) {
      const ys = [];
      const carry = perNode.map(() => ({ at: -Infinity, value: null }));
      for (const x of xs) {
        let sum = null;
        perNode.forEach((map, i) => {
          const s = map.get(x);
          if (s !== undefined) carry[i] = { at: x, value: fn(s, nodes[i]) };
          const c = carry[i];
          if (c.value !== null && x - c.at <= 2 * step) sum = (sum ?? 0) + c.value;
        });
        ys.push(sum);
      }
      data.push(ys);
    }
    return data;
  }

  function chartOptions(box, series, yLabel) {
    const width = Math.max(280, box.clientWidth);
    return {
      width,
      height: 200,
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.1, min)] } },
      axes: [
        { stroke: '#5d6677', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#e2e5ea' } },
        {
          stroke: '#5d6677',
          grid: { stroke: '#eef0f4' },
          ticks: { stroke: '#e2e5ea' },
          size: 56,
          label: yLabel,
          labelSize: 18,
          values: (_u, vals) => vals.map((v) => (Math.abs(v) >= 1000 ? `${dec.format(v / 1000)}k` : num(v))),
        },
      ],
      series: [
        { label: 'time', value: (u, v, si, idx) => legendValue(u, v, si, idx, (x) => clock(x * 1000)) },
        ...series,
      ],
    };
  }

  function line(label, stroke, fill) {
    return {
      label,
      stroke,
      width: 2,
      points: { show: false },
      ...(fill ? { fill } : {}),
      value: (u, v, si, idx) => legendValue(u, v, si, idx, num),
    };
  }

  /** What the legend shows: the value under the cursor, or the latest one when the cursor is elsewhere. */
  function legendValue(u, v, si, idx, format) {
    let value = v;
    if (idx === null || idx === undefined) {
      const ys = u.data[si] ?? [];
      value = null;
      for (let i = ys.length - 1; i >= 0 && value === null; i--) value = ys[i] ?? null;
    }
    return value === null || value === undefined ? '–' : format(value);
  }

  /** Draws (or redraws) chart `id`; rebuilt when its series change (a node joined, another selection). */
  function draw(id, key, series, data, yLabel) {
    const box = $(id);
    if (typeof uPlot === 'undefined') return;
    let chart = state.charts[id];
    if (chart !== undefined && state.chartKeys[id] !== key) {
      chart.destroy();
      chart = undefined;
    }
    if (chart === undefined) {
      box.textContent = '';
      chart = new uPlot(chartOptions(box, series, yLabel), data, box);
      state.charts[id] = chart;
      state.chartKeys[id] = key;
    } else {
      chart.setData(data);
    }
  }

  function drawCharts() {
    const all = [...state.nodes.keys()];
    const chosen = state.selected !== '' && state.nodes.has(state.selected) ? [state.selected] : all;
    const transports = new Set(Object.keys(TRANSPORT_COLORS));
    for (const n of state.nodes.values())
      for (const s of n.samples) for (const t of Object.keys(s.connections)) transports.add(t);
    const tlist = [...transports];
    draw(
      'chart-connections',
      `${chosen.join(',')}|${tlist.join(',')}`,
      tlist.map((t) => line(t, TRANSPORT_COLORS[t] ?? '#868e96')),
      align(
        chosen,
        tlist.map((t) => (s) => s.connections[t] ?? 0),
      ),
      'connections',
    );
    draw(
      'chart-nodes',
      all.join(','),
      all.map((node) => line(shortNode(node), colorOf(node))),
      align(
        all,
        all.map((node) => (s, owner) => (owner === node ? sumConnections(s) : null)),
      ),
      'connections',
    );
    draw(
      'chart-rates',
      chosen.join(','),
      [line('published/s', '#2f6fed', 'rgba(47,111,237,0.08)'), line('delivered/s', '#0ca678')],
      align(chosen, [(s) => s.published, (s) => s.delivered]),
      'per second',
    );
    draw(
      'chart-memory',
      all.join(','),
      all.map((node) => line(shortNode(node), colorOf(node))),
      align(
        all,
        all.map((node) => (s, owner) => (owner === node ? Math.round(s.rssBytes / 1048576) : null)),
      ),
      'MB',
    );
  }

  function shortNode(node) {
    return node === state.selfNode ? `${node} (this node)` : node;
  }

  function renderKpis() {
    let connections = 0;
    let subscriptions = 0;
    let published = 0;
    let delivered = 0;
    let bytesOut = 0;
    for (const n of state.nodes.values()) {
      const s = n.latest;
      if (!n.up || !s) continue;
      connections += sumConnections(s);
      subscriptions += s.subscriptions;
      published += s.published;
      delivered += s.delivered;
      bytesOut += s.bytesOut;
    }
    $('kpi-connections').textContent = num(connections);
    $('kpi-subscriptions').textContent = num(subscriptions);
    $('kpi-published').textContent = num(published);
    $('kpi-delivered').textContent = num(delivered);
    $('kpi-bytes').textContent = bytes(bytesOut);
  }

  function renderHeader(overview) {
    const total = state.nodes.size;
    const up = [...state.nodes.values()].filter((n) => n.up).length;
    $('node-count').textContent =
      `${total} node${total === 1 ? '' : 's'}` + (up !== total ? ` · ${total - up} silent` : '');
    const h = overview.health;
    const pill = $('health');
    const store = h.store && h.store.status;
    if (!h.ready) {
      pill.dataset.state = 'down';
      pill.textContent = h.state === 'running' ? 'Not ready' : `Not ready (${h.state})`;
    } else if (store === 'degraded' || up !== total) {
      pill.dataset.state = 'degraded';
      pill.textContent = store === 'degraded' ? 'Ready, store degraded' : 'Ready, a node is silent';
    } else {
      pill.dataset.state = 'ok';
      pill.textContent = 'Healthy';
    }
    pill.title = `engine ${h.engine}; store ${store ?? '?'}`;
  }

  function renderNodes() {
    const tbody = $('nodes-table').tBodies[0];
    tbody.textContent = '';
    const select = $('node-select');
    const options = new Set([...select.options].map((o) => o.value));
    for (const [node, n] of state.nodes) {
      const s = n.latest;
      const tr = document.createElement('tr');
      const name = cell(node, 'mono');
      const dot = el('span', '●');
      dot.style.color = colorOf(node);
      dot.style.marginRight = '6px';
      name.prepend(dot);
      if (n.self) name.append(el('span', 'this node', 'tag'));
      tr.append(name);
      tr.append(cell(n.up ? 'up' : 'silent', n.up ? 'status-up' : 'status-down'));
      if (s) {
        tr.append(
          cell(num(sumConnections(s)), 'num'),
          cell(num(s.subscriptions), 'num'),
          cell(num(s.streams), 'num'),
          cell(num(s.published), 'num'),
          cell(num(s.delivered), 'num'),
          cell(bytes(s.bytesOut), 'num'),
          cell(bytes(s.rssBytes), 'num'),
          cell(bytes(s.heapUsedBytes), 'num'),
          cell(`${num(s.loopLagMs)} ms`, 'num'),
        );
      } else {
        const td = cell('no sample yet', 'muted');
        td.colSpan = 9;
        tr.append(td);
      }
      tbody.append(tr);
      if (!options.has(node)) {
        const o = el('option', shortNode(node));
        o.value = node;
        select.append(o);
        options.add(node);
      }
    }
    for (const o of [...select.options]) if (o.value !== '' && !state.nodes.has(o.value)) o.remove();
    if (state.nodes.size === 0) emptyRow(tbody, 11, 'No samples yet: the first comes within one interval.');
  }

  async function refreshOverview() {
    const overview = await api(`overview?since=${sinceParam()}`);
    state.interval = overview.sampleInterval;
    merge(overview);
    renderHeader(overview);
    renderKpis();
    renderNodes();
    drawCharts();
  }

  // ---- top channels ------------------------------------------------------------------------------

  function channelButton(channel) {
    const b = el('button', channel, 'link');
    b.type = 'button';
    b.title = 'Inspect this channel';
    b.addEventListener('click', () => {
      $('channel-name').value = channel;
      void inspect(channel, true);
    });
    return b;
  }

  function renderTop(id, rows, first) {
    const tbody = $(id).tBodies[0];
    tbody.textContent = '';
    for (const r of rows) {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      name.append(channelButton(r.channel));
      tr.append(name);
      const a = first === 'subscribers' ? num(r.subscribers) : num(r.rate);
      const b = first === 'subscribers' ? num(r.rate) : num(r.subscribers);
      tr.append(cell(a, 'num'), cell(b, 'num'));
      tbody.append(tr);
    }
    if (rows.length === 0) {
      emptyRow(tbody, 3, first === 'subscribers' ? 'No channel has subscribers.' : 'No publications lately.');
    }
  }

  async function refreshChannels() {
    const c = await api('channels');
    renderTop('top-subscribers', c.bySubscribers, 'subscribers');
    renderTop('top-rate', c.byRate, 'rate');
  }

  // ---- channel inspector ---------------------------------------------------------------------------

  async function inspect(channel, scroll) {
    state.inspected = channel;
    const view = $('channel-view');
    if (scroll) $('channel-inspector').scrollIntoView({ behavior: 'smooth', block: 'start' });
    let c;
    try {
      c = await api(`channel?name=${encodeURIComponent(channel)}`);
    } catch (err) {
      view.textContent = '';
      view.append(el('p', `${err.code}: ${err.message}`, 'result err'));
      return;
    }
    if (state.inspected !== channel) return;
    view.textContent = '';
    view.append(el('p', c.channel, 'title'));
    const dl = document.createElement('dl');
    const add = (k, v) => dl.append(el('dt', k), el('dd', v));
    add(
      'Subscribers',
      `${num(c.subscribers)}` +
        (c.nodes.length > 1 ? ` (${c.nodes.map((n) => `${n.node}: ${n.subscribers}`).join(', ')})` : ''),
    );
    if (c.history && !c.history.error) add('Last offset', `${num(c.history.offset)} (epoch ${c.history.epoch})`);
    if (c.presence && !c.presence.error)
      add('Present', `${num(c.presence.clients)} clients, ${num(c.presence.users)} users`);
    view.append(dl);
    for (const e of c.nodeErrors) view.append(el('p', `${e.node} did not answer: ${e.error.message}`, 'note'));

    view.append(el('h3', 'History (newest first)'));
    if (c.history.error) view.append(el('p', c.history.error.message, 'note'));
    else if (c.history.publications.length === 0) view.append(el('p', 'No publication kept.', 'note'));
    else {
      const wrap = el('div', null, 'scroll');
      const table = document.createElement('table');
      const head = document.createElement('tr');
      head.append(el('th', 'Offset', 'num'), el('th', 'Time'), el('th', 'Data'));
      table.createTHead().append(head);
      const tbody = table.createTBody();
      for (const p of c.history.publications) {
        const tr = document.createElement('tr');
        const data = cell(null);
        if (p.channel !== c.channel) data.append(el('div', p.channel, 'chip'));
        data.append(el('div', truncate(JSON.stringify(p.data), 400), 'payload'));
        tr.append(cell(num(p.offset), 'num'), cell(clock(p.time), 'mono'), data);
        tbody.append(tr);
      }
      wrap.append(table);
      view.append(wrap);
    }

    view.append(el('h3', 'Presence'));
    if (c.presence.error) view.append(el('p', c.presence.error.message, 'note'));
    else if (c.presence.entries.length === 0) view.append(el('p', 'Nobody is present.', 'note'));
    else {
      const wrap = el('div', null, 'scroll');
      const table = document.createElement('table');
      const head = document.createElement('tr');
      head.append(el('th', 'Client'), el('th', 'User'), el('th', 'Info'));
      table.createTHead().append(head);
      const tbody = table.createTBody();
      for (const p of c.presence.entries) {
        const tr = document.createElement('tr');
        tr.append(
          cell(p.client, 'mono'),
          cell(p.user === '' ? 'anonymous' : p.user),
          cell(p.info === undefined ? '' : truncate(JSON.stringify(p.info), 200), 'mono'),
        );
        tbody.append(tr);
      }
      wrap.append(table);
      view.append(wrap);
      if (c.presence.clients > c.presence.entries.length) {
        view.append(el('p', `and ${num(c.presence.clients - c.presence.entries.length)} more`, 'note'));
      }
    }
  }

  function truncate(text, max) {
    const s = String(text);
    return s.length > max ? `${s.slice(0, max)}…` : s;
  }

  // ---- connections -------------------------------------------------------------------------------

  async function searchConnections() {
    const q = $('conn-q').value.trim();
    const summary = $('conn-summary');
    let r;
    try {
      r = await api(`connections?limit=100${q === '' ? '' : `&q=${encodeURIComponent(q)}`}`);
    } catch (err) {
      summary.textContent = `${err.code}: ${err.message}`;
      return;
    }
    const tbody = $('conn-table').tBodies[0];
    tbody.textContent = '';
    for (const c of r.connections) tbody.append(connectionRow(c));
    if (r.connections.length === 0) emptyRow(tbody, 9, q === '' ? 'No connection.' : 'No connection matches.');
    const shown = r.connections.length;
    summary.textContent =
      `${num(r.matched)} connection${r.matched === 1 ? '' : 's'}${q === '' ? '' : ' match'}` +
      (shown < r.matched ? `; the ${shown} newest shown` : '') +
      (r.nodeErrors.length > 0 ? `; not answering: ${r.nodeErrors.map((e) => e.node).join(', ')}` : '');
  }

  function connectionRow(c) {
    const tr = document.createElement('tr');
    tr.dataset.client = c.client;
    const subs = document.createElement('div');
    subs.className = 'subs';
    for (const s of c.subscriptions) subs.append(el('span', s, 'chip'));
    if (c.subscriptionCount > c.subscriptions.length) {
      subs.append(el('span', `+${c.subscriptionCount - c.subscriptions.length}`, 'muted'));
    }
    if (c.subscriptionCount === 0) subs.append(el('span', 'none', 'muted'));
    const subsCell = document.createElement('td');
    subsCell.append(subs);
    const connected = cell(since(c.connectedAt));
    connected.title = new Date(c.connectedAt).toLocaleString();
    const action = document.createElement('td');
    const button = el('button', 'Disconnect', 'danger');
    button.type = 'button';
    let armed;
    button.addEventListener('click', () => {
      if (!button.classList.contains('confirm')) {
        button.classList.add('confirm');
        button.textContent = 'Confirm';
        armed = setTimeout(() => {
          button.classList.remove('confirm');
          button.textContent = 'Disconnect';
        }, 4000);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      button.textContent = '…';
      api('disconnect', { client: c.client, reconnect: $('conn-reconnect').checked }).then(
        (r) => {
          button.textContent = r.disconnected > 0 ? 'Disconnected' : 'Already gone';
          button.classList.remove('confirm');
          tr.classList.add('gone');
        },
        (err) => {
          button.disabled = false;
          button.classList.remove('confirm');
          button.textContent = 'Disconnect';
          button.title = err.message;
          showBanner(`Disconnect failed: ${err.message}`);
        },
      );
    });
    action.append(button);
    tr.append(
      cell(c.client, 'mono'),
      cell(c.user === '' ? 'anonymous' : c.user, c.user === '' ? 'muted' : ''),
      cell(c.node, 'mono'),
      cell(c.transport),
      subsCell,
      cell(bytes(c.queuedBytes), 'num'),
      cell(c.remoteAddress ?? '', 'mono'),
      connected,
      action,
    );
    return tr;
  }

  // ---- publish console ---------------------------------------------------------------------------

  async function publish() {
    const out = $('pub-result');
    const channel = $('pub-channel').value.trim();
    let data;
    try {
      data = JSON.parse($('pub-data').value);
    } catch (err) {
      out.className = 'result err';
      out.textContent = `Not valid JSON: ${err.message}`;
      return;
    }
    out.className = 'result';
    out.textContent = 'Publishing…';
    try {
      const r = await api('publish', { channel, data });
      out.className = 'result ok';
      out.textContent = `Published to ${r.channel} at offset ${r.offset} (epoch ${r.epoch})`;
      if (state.inspected === r.channel) void inspect(r.channel, false);
    } catch (err) {
      out.className = 'result err';
      out.textContent = `${err.code}: ${err.message}`;
    }
  }

  // ---- start -------------------------------------------------------------------------------------

  async function loop(fn, every) {
    for (;;) {
      try {
        await fn();
        showBanner('');
      } catch (err) {
        if (err && err.status === 401) return;
        showBanner(`Cannot reach the server: ${err && err.message ? err.message : err}`);
      }
      await new Promise((resolve) => setTimeout(resolve, every()));
    }
  }

  async function start() {
    const s = await api('session');
    state.csrf = s.csrf;
    state.interval = s.sampleInterval;
    state.selfNode = s.node;
    $('this-node').textContent = `node ${s.node}`;
    $('version').textContent = `v${s.version} · ${s.engine}`;

    $('logout').addEventListener('click', () => {
      api('/admin/logout', {}).then(
        () => location.assign('/admin/login'),
        () => location.assign('/admin/login'),
      );
    });
    $('node-select').addEventListener('change', (e) => {
      state.selected = e.target.value;
      drawCharts();
    });
    $('channel-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const name = $('channel-name').value.trim();
      if (name !== '') void inspect(name, false);
    });
    $('conn-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void searchConnections();
    });
    $('publish-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void publish();
    });
    let resizing;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        for (const [id, chart] of Object.entries(state.charts)) {
          chart.setSize({ width: Math.max(280, $(id).clientWidth), height: 200 });
        }
      }, 100);
    });

    void loop(refreshOverview, () => state.interval);
    void loop(refreshChannels, () => Math.max(state.interval, 2000));
    void searchConnections();
  }

  start().catch((err) => showBanner(`The admin page could not start: ${err && err.message ? err.message : err}`));
})();
