/** The `/demo/` page: a card per demo, linking to it. */
import { VERSION } from '../version.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

export function indexPage(
  demos: ReadonlyArray<{ name: string; meta: { title: string; description: string } }>,
): string {
  const cards = demos
    .map(
      ({ name, meta }) => `
      <li><a class="card" href="${encodeURIComponent(name)}/">
        <h2>${escape(meta.title)}</h2>
        <p>${escape(meta.description)}</p>
        <span class="open">Open <span aria-hidden="true">&rarr;</span></span>
      </a></li>`,
    )
    .join('');
  const list =
    demos.length > 0
      ? `<ul class="demos">${cards}\n    </ul>`
      : '<p class="empty">No demo could be loaded: see the server log.</p>';
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Herald demos</title>
  <link rel="icon" href="data:,">
  <style>
    :root { color-scheme: light; --bg: #f5f6f8; --card: #fff; --line: #e2e5ea; --text: #1b2130; --muted: #5d6677; --accent: #2f6fed; }
    * { box-sizing: border-box; }
    body { margin: 0; background: var(--bg); color: var(--text); font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
    main { max-width: 960px; margin: 0 auto; padding: 40px 20px 56px; }
    h1 { margin: 0 0 6px; font-size: 28px; letter-spacing: -0.01em; }
    header p { margin: 0; color: var(--muted); max-width: 680px; }
    .demos { list-style: none; padding: 0; margin: 28px 0 0; display: grid; gap: 16px; grid-template-columns: repeat(2, 1fr); }
    @media (max-width: 640px) { main { padding: 24px 14px 40px; } .demos { grid-template-columns: 1fr; } }
    .card { display: flex; flex-direction: column; height: 100%; padding: 20px; background: var(--card); border: 1px solid var(--line); border-radius: 10px; color: inherit; text-decoration: none; transition: border-color .15s, box-shadow .15s; }
    .card:hover, .card:focus-visible { border-color: var(--accent); box-shadow: 0 2px 10px rgba(47, 111, 237, .12); outline: none; }
    .card h2 { margin: 0 0 6px; font-size: 19px; }
    .card p { margin: 0 0 14px; color: var(--muted); font-size: 15px; flex: 1; }
    .open { color: var(--accent); font-weight: 600; font-size: 15px; }
    .empty { margin-top: 28px; color: var(--muted); }
    footer { margin-top: 32px; color: var(--muted); font-size: 14px; }
    code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #eceef2; padding: 1px 5px; border-radius: 4px; }
  </style>
</head>
<body>
  <main>
    <header>
      <h1>Herald demos</h1>
      <p>Each demo is a plain page using the SDK bundle, and a small backend that talks to Herald over
      HTTP, as your application would. Their code is in <code>examples/</code>.</p>
    </header>
    ${list}
    <footer>Herald ${VERSION} &middot; add <code>?transport=ws</code>, <code>stream</code>, <code>sse</code> or <code>poll</code> to a demo's URL to force a transport.</footer>
  </main>
</body>
</html>
`;
}
