/**
 * The full chaos run (`npm run chaos`, 7 to 10 minutes): every scenario of runner.ts, longer and
 * repeated, one after the other; prints the history checker's table and fails on any silent hole,
 * duplicate, reordering or dead stream, or on a fault that did not take effect.
 *
 * Environment: `CHAOS_SCENARIOS=a,b` runs only those; `CHAOS_MODE=short` runs the CI variant;
 * `CHAOS_REPORT=<file>` also writes the table (Markdown) there; `CHAOS_DEBUG=1` logs what the
 * subscribers do; `CHAOS_HERALD_CLI=<main.js>` runs the nodes from another build. docs/reliability.md.
 */
import { writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { formatProblems, formatTable, type Row } from './history-checker.js';
import { redisServerAvailable, runScenario, SCENARIOS, type Mode, type ScenarioResult } from './runner.js';

const mode: Mode = process.env['CHAOS_MODE'] === 'short' ? 'short' : 'full';
const only = (process.env['CHAOS_SCENARIOS'] ?? '').split(',').filter((x) => x !== '');
const scenarios = SCENARIOS.filter((s) => only.length === 0 || only.includes(s.name));

it(`chaos suite (${mode}): ${scenarios.map((s) => s.name).join(', ')}`, async () => {
  if (!redisServerAvailable())
    throw new Error('redis-server is not installed (apt-get install redis-server): the chaos suite needs it');
  if (only.length > 0 && scenarios.length !== only.length)
    throw new Error(`unknown scenario in CHAOS_SCENARIOS; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  const t0 = Date.now();
  const results: ScenarioResult[] = [];
  for (const s of scenarios) {
    const r = await runScenario(s, mode).catch((err: unknown): ScenarioResult => ({
      scenario: s.name,
      rows: [],
      notes: [],
      errors: [`${s.name} did not finish: ${String((err as Error).stack ?? err)}`],
      seconds: 0,
    }));
    results.push(r);
    console.log(
      `[chaos] ${s.name} (${r.seconds.toFixed(0)} s)\n${formatTable(r.rows)}\n  ${r.notes.join('\n  ')}${r.errors.length > 0 ? `\n  ERRORS:\n  ${r.errors.join('\n  ')}` : ''}`,
    );
  }
  const rows: Row[] = results.flatMap((r) => r.rows);
  const minutes = ((Date.now() - t0) / 60_000).toFixed(1);
  const table = formatTable(rows);
  const report = [
    `Chaos run (${mode}), ${new Date().toISOString()}, ${minutes} min, node ${process.version}`,
    '',
    table,
    '',
    ...results.map((r) => `- ${r.scenario} (${r.seconds.toFixed(0)} s): ${r.notes.join('; ')}`),
  ].join('\n');
  console.log(`\n${report}\n`);
  const out = process.env['CHAOS_REPORT'];
  if (out !== undefined && out !== '') writeFileSync(out, `${report}\n`);
  const errors = results.flatMap((r) => r.errors);
  const failed = rows.filter((r) => r.verdict === 'FAIL');
  expect(failed.length + errors.length === 0, `${formatProblems(failed)}\n${errors.join('\n')}`).toBe(true);
});
