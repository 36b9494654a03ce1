/**
 * Runs the benchmark suite once at a tiny N against a real Herald (built by `pretest`), so the load
 * generator, the orchestrator and the report cannot rot. Asserts what the run delivered — every
 * subscriber subscribed, every publication delivered once — never how fast.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'herald-bench-smoke-'));

interface Step {
  target: string;
  deliveriesPerSec: number;
  lost: number;
  dup: number;
  closed: number;
  p99: number;
  usPerDelivery: number;
}
interface Memory {
  target: string;
  connected: number;
  kibPerConnection: number;
}
interface Results {
  results: {
    steps: Step[];
    rounds: { target: string; usPerDelivery: number[] }[];
    memory: Memory[];
    skipped: { target: string; reason: string }[];
  }[];
}

function runBench(args: readonly string[], dir = out): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args, '--out', dir], { timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, output: stdout + stderr });
    });
  });
}

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bench suite smoke run', () => {
  it('measures Herald over WebSocket (JSON and MessagePack), SSE, NDJSON and long-poll with nothing lost', async () => {
    const targets = 'herald-ws,herald-ws-msgpack,herald-sse,herald-stream,herald-poll';
    const run = await runBench([
      's2',
      '--n',
      '12',
      '--rates',
      '50',
      '--targets',
      targets,
      '--retries',
      '0',
      '--warmup',
      '0.3',
      '--measure',
      '0.7',
    ]);
    expect(run.code, run.output).toBe(0);
    const json = readdirSync(out).find((f) => f.endsWith('.json'));
    expect(json, run.output).toBeDefined();
    const { results } = JSON.parse(readFileSync(join(out, json!), 'utf8')) as Results;
    const steps = results[0]!.steps;
    expect(results[0]!.skipped).toEqual([]);
    expect(steps.map((s) => s.target)).toEqual(targets.split(','));
    for (const s of steps) {
      expect(s.deliveriesPerSec, s.target).toBeGreaterThan(0);
      expect({ target: s.target, lost: s.lost, dup: s.dup, closed: s.closed }).toEqual({
        target: s.target,
        lost: 0,
        dup: 0,
        closed: 0,
      });
      expect(Number.isFinite(s.usPerDelivery) && Number.isFinite(s.p99)).toBe(true);
    }
    expect(readdirSync(out).some((f) => f.endsWith('.svg'))).toBe(true);
    expect(readdirSync(out).some((f) => f.endsWith('.md'))).toBe(true);
  }, 120_000);

  it('publishes over GET /api/ws: nothing lost, nothing twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-bench-smoke-'));
    try {
      const args = ['s5', '--n', '12', '--rates', '200', '--targets', 'herald-ws-apiws', '--retries', '0'];
      const run = await runBench([...args, '--warmup', '0.3', '--measure', '0.7'], dir);
      expect(run.code, run.output).toBe(0);
      const json = readdirSync(dir).find((f) => f.endsWith('.json'));
      const { results } = JSON.parse(readFileSync(join(dir, json!), 'utf8')) as Results;
      const steps = results[0]!.steps;
      expect(steps.map((s) => [s.target, s.lost, s.dup, s.closed])).toEqual([['herald-ws-apiws', 0, 0, 0]]);
      expect(steps[0]!.deliveriesPerSec).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('publishes through POST /api/batch in two rounds and reads idle memory per connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-bench-smoke-'));
    try {
      const run = await runBench(
        [
          's5',
          's4',
          '--n',
          '12',
          '--rates',
          '200',
          '--targets',
          'herald-ws-batch',
          '--retries',
          '0',
          '--warmup',
          '0.3',
          '--measure',
          '0.7',
          '--settle',
          '0',
          '--rounds',
          '2',
        ],
        dir,
      );
      expect(run.code, run.output).toBe(0);
      const json = readdirSync(dir).find((f) => f.endsWith('.json'));
      const { results } = JSON.parse(readFileSync(join(dir, json!), 'utf8')) as Results;
      const [s5, s4] = results;
      expect(s5!.steps.map((s) => [s.target, s.lost, s.dup, s.closed])).toEqual([['herald-ws-batch', 0, 0, 0]]);
      expect(s5!.steps[0]!.deliveriesPerSec).toBeGreaterThan(0);
      expect(s5!.rounds.map((r) => [r.target, r.usPerDelivery.length])).toEqual([['herald-ws-batch', 2]]);
      const md = readFileSync(
        join(
          dir,
          readdirSync(dir).find((f) => f.endsWith('.md'))!,
        ),
        'utf8',
      );
      expect(md).toContain('### Rounds');
      expect(s4!.memory.map((m) => [m.target, m.connected])).toEqual([['herald-ws-batch', 12]]);
      expect(Number.isFinite(s4!.memory[0]!.kibPerConnection)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('reports the heap per idle connection from two heap snapshots', async () => {
    const run = await runBench(['heap', '--n', '5', '--targets', 'herald-ws']);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/Heap per idle subscribed connection: Herald WS \(N = 5\)/);
    expect(run.output).toMatch(/\| `Session` \|/);
  }, 120_000);
});
