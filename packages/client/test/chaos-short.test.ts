/**
 * The chaos suite's short variant (CI): every scenario of chaos/runner.ts once, with each fault held
 * a few seconds — Redis kill -9 with and without persistence, restore from an older snapshot, replica
 * promotion, `CLIENT KILL TYPE pubsub`, node SIGKILL and SIGSTOP, slow clients on every transport,
 * connection churn — each on its own `redis-server` processes (free ports; never the machine's Redis
 * on 6379) and two Herald nodes (child processes of packages/server/dist, built by `npm test`'s
 * pretest). A scenario fails on any silent hole, duplicate, reordering or dead stream found by the
 * history checker (chaos/history-checker.ts), on a crash of a node, or when its fault had no effect.
 * The full run is `npm run chaos` (docs/reliability.md).
 *
 * Needs `redis-server` on PATH: without it the suite is skipped, except under CI=true where it fails.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { formatProblems, formatTable } from './chaos/history-checker.js';
import { runScenario, SCENARIOS, type ScenarioResult } from './chaos/runner.js';
import { findProgram, needProgram } from '@herald/test-support';

const need = needProgram(findProgram('redis-server'), 'redis-server', 'apt-get install redis-server');
const results: ScenarioResult[] = [];

describe.skipIf(need.mode === 'skip')(need.title('chaos suite, short variant'), () => {
  afterAll(() => {
    if (results.length === 0) return;
    const rows = results.flatMap((r) => r.rows);
    console.log(
      `chaos (short):\n${formatTable(rows)}\n${results.map((r) => `- ${r.scenario} (${r.seconds.toFixed(0)} s): ${r.notes.join('; ')}`).join('\n')}`,
    );
  });

  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: ${scenario.fault}`, async () => {
      if (need.mode === 'fail') throw new Error(need.missing);
      const r = await runScenario(scenario, 'short');
      results.push(r);
      const failed = r.rows.filter((row) => row.verdict === 'FAIL');
      const message = `${formatTable(r.rows)}\n${formatProblems(failed)}\n${r.errors.join('\n')}\n${r.notes.join('\n')}`;
      expect(failed.length + r.errors.length, message).toBe(0);
      expect(r.rows.length, message).toBeGreaterThan(0);
    }, 90_000);
  }
});
