/**
 * `npm run bench -- backend [--measure S]`: publishes/s from one backend process, and Herald's CPU
 * per publish, with `@herald/api` over its keep-alive pool and over one `GET /api/ws` WebSocket, against
 * a new TCP connection per publish. Herald
 * runs alone on the server core, the backend process on the generator core; each way runs against a
 * fresh server.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { spawnPinned, type Pinning } from './launch.js';
import { cpuTimes } from './proc.js';
import { API_KEY, startServer } from './targets.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface BackendRow {
  readonly mode: 'pool' | 'websocket' | 'new-connection';
  readonly label: string;
  readonly publishes: number;
  readonly errors: number;
  readonly perSecond: number;
  readonly serverCpuPercent: number;
  readonly serverUsPerPublish: number;
}

const LABELS = {
  pool: '`@herald/api` (keep-alive pool of 4)',
  websocket: "`@herald/api` (`publishOver: 'websocket'`)",
  'new-connection': 'a new TCP connection per publish',
} as const;

export async function backendReport(pin: Pinning, seconds: number, log: (line: string) => void): Promise<BackendRow[]> {
  const rows: BackendRow[] = [];
  for (const mode of ['pool', 'websocket', 'new-connection'] as const) {
    const server = await startServer('herald', { cpu: pin.server });
    try {
      const pids = server.pids();
      const c0 = cpuTimes(pids);
      const child = spawnPinned(
        process.execPath,
        [join(here, 'gen', 'backend-publisher.js'), mode, String(server.port), API_KEY, String(seconds), '16'],
        { cpu: pin.generator, pipes: true },
      );
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      const c1 = cpuTimes(pids);
      if (code !== 0) throw new Error(`backend publisher (${mode}) exited with ${code}: ${out}`);
      const r = JSON.parse(out.trim().split('\n').pop()!) as { done: number; errors: number; seconds: number };
      const cpu = c1.user + c1.system - (c0.user + c0.system);
      const row: BackendRow = {
        mode,
        label: LABELS[mode],
        publishes: r.done,
        errors: r.errors,
        perSecond: r.done / r.seconds,
        serverCpuPercent: (100 * cpu) / r.seconds,
        serverUsPerPublish: r.done > 0 ? (cpu * 1e6) / r.done : 0,
      };
      log(
        `  ${row.label}: ${Math.round(row.perSecond)} publishes/s, server ${row.serverCpuPercent.toFixed(0)}% = ${row.serverUsPerPublish.toFixed(1)} µs/publish, ${row.errors} errors`,
      );
      rows.push(row);
    } finally {
      await server.stop();
    }
  }
  return rows;
}

export function backendMarkdown(rows: readonly BackendRow[], seconds: number): string {
  const lines = [
    `## Publishing from one backend process (${seconds} s each, 16 publishes in flight, 100 channels)`,
    '',
    '| client | publishes/s | errors | server CPU % | server µs/publish |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${r.errors} | ${r.serverCpuPercent.toFixed(0)} | ${r.serverUsPerPublish.toFixed(1)} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
