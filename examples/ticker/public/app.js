// Ticker page: one subscription to `ticker.**`, a table row per symbol, and a count of what arrives.
'use strict';
/* global DemoPage */

const $ = (id) => document.getElementById(id);

const price = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const count = new Intl.NumberFormat('en-US');
const rows = new Map();

function addRow(q) {
  const tr = document.createElement('tr');
  tr.innerHTML =
    '<th scope="row"></th><td class="company"></td><td class="num price"></td><td class="num change"></td><td class="num pct"></td>';
  tr.cells[0].textContent = q.symbol;
  tr.cells[1].textContent = q.name;
  $('quotes').tBodies[0].append(tr);
  const row = { tr, price: q.price, open: q.open };
  rows.set(q.symbol, row);
  paint(row, q.price);
}

function paint(row, value) {
  const up = value > row.price;
  const down = value < row.price;
  row.price = value;
  const change = value - row.open;
  const [, , priceCell, changeCell, pctCell] = row.tr.cells;
  priceCell.textContent = price.format(value);
  changeCell.textContent = (change >= 0 ? '+' : '−') + price.format(Math.abs(change));
  pctCell.textContent = (change >= 0 ? '+' : '−') + Math.abs((change / row.open) * 100).toFixed(2);
  row.tr.dataset.trend = change > 0 ? 'up' : change < 0 ? 'down' : 'flat';
  if (up || down) {
    priceCell.animate(
      [
        { backgroundColor: up ? 'rgba(22, 163, 74, 0.28)' : 'rgba(220, 38, 38, 0.25)' },
        { backgroundColor: 'transparent' },
      ],
      { duration: 700, easing: 'ease-out' },
    );
  }
}

// Messages per second: the publications of the last two seconds, counted four times a second.
const arrivals = [];
let total = 0;
const startedAt = performance.now();

function showCounters() {
  const now = performance.now();
  while (arrivals.length > 0 && arrivals[0] < now - 2000) arrivals.shift();
  const seconds = Math.min(2, Math.max(0.25, (now - startedAt) / 1000));
  const rate = arrivals.length / seconds;
  $('rate').textContent = rate.toFixed(1);
  $('rate').dataset.value = String(rate);
  $('total').textContent = count.format(total);
  $('total').dataset.value = String(total);
}

async function main() {
  DemoPage.transportSwitch($('transports')); // Auto: the SDK's order (WebSocket, HTTP stream, SSE, long-poll)
  const config = await DemoPage.json(await fetch('api/config'));
  for (const q of config.quotes) addRow(q);
  $('viewers').textContent = String(config.viewers || 1);

  const herald = DemoPage.connect(config);

  const sub = herald.subscribe(config.channel);
  sub.on('publication', (p) => {
    total += 1;
    arrivals.push(performance.now());
    const row = rows.get(p.data.symbol);
    if (row) paint(row, p.data.price);
    if (p.data.viewers) $('viewers').textContent = count.format(p.data.viewers);
  });
  sub.on('error', (e) => DemoPage.showStatus('error', `Subscription refused: ${e.message}`));
  setInterval(showCounters, 250);
}

main().catch((err) => DemoPage.showStatus('error', String(err.message || err)));
