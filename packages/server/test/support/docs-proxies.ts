/**
 * The nginx and HAProxy configurations of docs/scaling.md ("Behind nginx", "Behind HAProxy"), taken
 * from the document itself with only addresses (and, where a test asks, timeouts) substituted, so
 * that the tests running the real proxies with them keep the docs true.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SCALING_MD = fileURLToPath(new URL('../../../../docs/scaling.md', import.meta.url));
/** The node addresses the docs' configurations name. */
const DOCS_PORTS = [8081, 8082, 8083];

/** The first ```<lang> block under the heading `heading` of docs/scaling.md. */
function docsBlock(heading: string, lang: string): string {
  const md = readFileSync(SCALING_MD, 'utf8');
  const at = md.indexOf(`\n${heading}\n`);
  if (at === -1) throw new Error(`docs/scaling.md has no "${heading}" section`);
  const block = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(md.slice(at))?.[1];
  if (block === undefined) throw new Error(`docs/scaling.md has no ${lang} block under "${heading}"`);
  return block;
}

function replaceOnce(conf: string, from: string | RegExp, to: string, what: string): string {
  const next = conf.replace(from, to);
  if (next === conf) throw new Error(`the ${what} of docs/scaling.md no longer has ${String(from)}`);
  return next;
}

function withUpstreams(conf: string, upstreams: readonly number[], what: string): string {
  DOCS_PORTS.forEach((p, i) => {
    const next = conf.replaceAll(`127.0.0.1:${p}`, `127.0.0.1:${upstreams[i]}`);
    if (next === conf) throw new Error(`the ${what} of docs/scaling.md no longer names 127.0.0.1:${p}`);
    conf = next;
  });
  return conf;
}

/**
 * The nginx block of "Behind nginx" (a conf.d snippet), listening on `port`, proxying to
 * `upstreams`; `readTimeout` replaces the value of every `proxy_read_timeout`.
 */
export function docsNginxConfig(
  port: number,
  upstreams: readonly number[],
  opts: { readTimeout?: string } = {},
): string {
  const what = 'nginx block';
  let conf = withUpstreams(docsBlock('## Behind nginx', 'nginx'), upstreams, what);
  conf = replaceOnce(conf, 'listen 80;', `listen 127.0.0.1:${port};`, what);
  if (opts.readTimeout !== undefined)
    conf = replaceOnce(conf, /proxy_read_timeout \S+;/g, `proxy_read_timeout ${opts.readTimeout};`, what);
  return conf;
}

/**
 * The haproxy.cfg of "Behind HAProxy", listening on `port`, proxying to `upstreams`; `timeout`
 * replaces the values of `timeout client`, `timeout server` and `timeout tunnel`.
 */
export function docsHaproxyConfig(port: number, upstreams: readonly number[], opts: { timeout?: string } = {}): string {
  const what = 'HAProxy block';
  let conf = withUpstreams(docsBlock('## Behind HAProxy', 'haproxy'), upstreams, what);
  conf = replaceOnce(conf, /^(\s*)bind :80$/m, `$1bind 127.0.0.1:${port}`, what);
  if (opts.timeout !== undefined) {
    for (const t of ['client', 'server', 'tunnel'])
      conf = replaceOnce(conf, new RegExp(`^(\\s*timeout ${t}) +\\S+`, 'm'), `$1 ${opts.timeout}`, what);
  }
  return conf;
}
