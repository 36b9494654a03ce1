// Progress page: start a job, follow `progress.<job>` with `backlog: 1`, keep the job id in the URL.
'use strict';
/* global DemoPage */

// HTTP streaming first (the point of this demo), then the others if it cannot connect.
const DEFAULT_ORDER = ['http-stream', 'sse', 'long-poll', 'websocket'];
const AUTO = 'HTTP streaming, else SSE, long-polling, WebSocket';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const { showStatus } = DemoPage;
/** Every percentage shown, in order (the tests read it). */
window.progressLog = [];

/** Links that reload the page with another `?transport=` (and the same job). */
const renderTransportSwitch = () => DemoPage.transportSwitch($('transports'), AUTO);

const count = new Intl.NumberFormat('en-US');
let received = 0;

/** Shows one state of the job: `{ state, step, total, pct, stage, result?, error? }`. */
function render(s) {
  const pct = Math.max(0, Math.min(100, s.pct ?? 0));
  window.progressLog.push(pct);
  const bar = $('bar');
  bar.dataset.state = s.state;
  bar.setAttribute('aria-valuenow', String(pct));
  bar.firstElementChild.style.width = `${pct}%`;
  // After a reload the bar jumps to where the job is, instead of sliding up from 0.
  if (bar.classList.contains('instant')) requestAnimationFrame(() => bar.classList.remove('instant'));
  $('pct').textContent = `${pct} %`;
  $('stage').textContent = s.state === 'failed' ? `Failed: ${s.error}` : s.stage || '';
  $('step').textContent = s.total ? `step ${s.step} of ${s.total}` : '';
  const done = s.state === 'done';
  $('result').hidden = !done;
  if (done) {
    const r = s.result;
    $('result-text').textContent =
      `Processed ${count.format(r.records)} records in ${r.seconds.toFixed(1)} s · checksum ${r.checksum}`;
  }
  const finished = done || s.state === 'failed';
  $('start').disabled = !finished;
  $('start').textContent = finished ? 'Start another job' : 'Running…';
}

function resetView(text) {
  const bar = $('bar');
  bar.dataset.state = 'idle';
  bar.setAttribute('aria-valuenow', '0');
  bar.firstElementChild.style.width = '0%';
  $('pct').textContent = '0 %';
  $('stage').textContent = text;
  $('step').textContent = '';
  $('result').hidden = true;
}

let herald;
let sub;

/** Follows a job: its latest state at once (backlog), then every new one. */
function follow(job) {
  sub?.unsubscribe();
  const channel = `progress.${job}`;
  $('job').textContent = `Job ${job}`;
  $('channel').textContent = channel;
  const current = (sub = herald.subscribe(channel, { backlog: 1 }));
  let seen = false;
  sub.on('publication', (p) => {
    seen = true;
    received += 1;
    $('received').textContent = count.format(received);
    render(p.data);
  });
  sub.once('subscribed', () => {
    // The backlog is delivered right after this event: if none came, Herald has no state of this
    // job (an unknown id, or its history expired).
    setTimeout(() => {
      if (seen || sub !== current) return;
      resetView('This job is unknown here, or too old. Start a new one.');
      $('start').disabled = false;
      $('start').textContent = 'Start job';
    }, 0);
  });
  sub.on('error', (e) => showStatus('error', `Subscription refused: ${e.message}`));
}

async function startJob() {
  $('start').disabled = true;
  $('start').textContent = 'Starting…';
  resetView('Starting…');
  try {
    const body = await DemoPage.json(await fetch('api/start', { method: 'POST' }));
    const next = new URLSearchParams(location.search);
    next.set('job', body.job);
    history.replaceState(null, '', `?${next}`);
    renderTransportSwitch(); // its links keep the job
    follow(body.job);
  } catch (err) {
    resetView(`Could not start a job: ${err.message}`);
    $('start').disabled = false;
    $('start').textContent = 'Start job';
  }
}

async function main() {
  renderTransportSwitch();
  const config = await DemoPage.json(await fetch('api/config'));
  herald = DemoPage.connect(config, { transports: DEFAULT_ORDER });
  $('start').addEventListener('click', () => void startJob());
  const job = params.get('job');
  if (job && /^[A-Za-z0-9_-]{1,64}$/.test(job)) {
    $('start').textContent = 'Running…';
    resetView('Picking up the job…');
    $('bar').classList.add('instant');
    follow(job);
  } else {
    $('start').disabled = false;
  }
}

main().catch((err) => showStatus('error', String(err.message || err)));
