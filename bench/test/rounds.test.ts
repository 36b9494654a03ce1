/**
 * `--rounds`: several rounds of a rate scenario are judged by each target's median round; and the
 * p99 verdict says when the generator, not the servers, set the pace of the tails it compares.
 */
import { describe, expect, it } from 'vitest';
import { markdownReport, verdicts } from '../src/report.js';
import { generatorPaced, generatorUsPerDelivery, type StepResult } from '../src/run.js';
import { medianSteps, scenario, type ScenarioResult } from '../src/scenarios.js';

function step(target: string, offered: number, us: number, p99: number): StepResult {
  return {
    target,
    label: target,
    n: 10,
    channels: 1,
    rate: offered / 10,
    offered,
    deliveriesPerSec: offered,
    lost: 0,
    dup: 0,
    closed: 0,
    p50: p99 / 2,
    p95: p99 * 0.9,
    p99,
    max: p99 + 1,
    serverCpuPct: 50,
    serverSysPct: 40,
    usPerDelivery: us,
    writesPerDelivery: 1,
    rssMiB: 100,
    genCpuPct: 50,
    genCoreBusyPct: 50,
    serverCoreOtherPct: 0,
    genCoreOtherPct: 0,
    pubAchieved: offered / 10,
    pubFailed: 0,
    notes: [],
    window: { startUs: us, endUs: us + 1 },
  };
}

describe('medianSteps', () => {
  it('keeps per target and rate the median round, with median latencies, and every round beside it', () => {
    const steps = [
      step('a', 100, 7, 90),
      step('b', 100, 6, 70),
      step('a', 100, 5, 60),
      step('b', 100, 9, 80),
      step('a', 100, 6, 75),
      step('b', 100, 7, 95),
      step('a', 200, 3, 100), // only round 1 reached 200/s for a
    ];
    const { steps: out, rounds } = medianSteps(steps, 3);
    const a100 = out.find((s) => s.target === 'a' && s.offered === 100)!;
    expect(a100.usPerDelivery).toBe(6);
    expect(a100.window.startUs).toBe(6); // the median round's own step
    expect(a100.p99).toBe(75);
    expect(a100.notes).toEqual(['median of 3 rounds']);
    const b100 = out.find((s) => s.target === 'b')!;
    expect([b100.usPerDelivery, b100.p99]).toEqual([7, 80]); // p99 is its own median, not round 3's 95
    const a200 = out.find((s) => s.offered === 200)!;
    expect(a200.notes).toEqual(['median of 1 round (of 3)']);
    expect(rounds).toEqual([
      { target: 'a', label: 'a', offered: 100, usPerDelivery: [7, 5, 6], p99: [90, 60, 75] },
      { target: 'b', label: 'b', offered: 100, usPerDelivery: [6, 9, 7], p99: [70, 80, 95] },
      { target: 'a', label: 'a', offered: 200, usPerDelivery: [3], p99: [100] },
    ]);
  });

  it('takes the lower middle round of an even count', () => {
    const { steps } = medianSteps([step('a', 100, 8, 1), step('a', 100, 6, 2)], 2);
    expect(steps[0]!.usPerDelivery).toBe(6);
    expect(steps[0]!.p99).toBe(1.5);
  });
});

describe('a fan-out paced by the generator', () => {
  const s2 = scenario('s2', 10_000);
  const at = (target: string, us: number, p99: number, genCore: number): StepResult => ({
    ...step(target, 100_000, us, p99),
    n: s2.n,
    rate: 100_000 / s2.n,
    genCoreBusyPct: genCore,
  });

  it('is told apart from one where the server alone sets the pace', () => {
    // 61 % of the generator's core at 100,000/s is 6.1 µs per delivery.
    expect(generatorUsPerDelivery(at('herald-ws', 5.8, 70, 61))).toBeCloseTo(6.1, 6);
    expect(generatorPaced(at('herald-ws', 5.8, 70, 61))).toBe(true);
    expect(generatorPaced(at('socketio', 13, 1000, 61))).toBe(false);
  });

  it('is named in the p99 verdict when both tails are', () => {
    const result: ScenarioResult = {
      spec: s2,
      steps: [at('herald-ws', 5.8, 70.5, 61), at('nchan-ws', 6.4, 70.1, 62), at('socketio', 13, 1000, 40)],
      rounds: [],
      memory: [],
      storms: [],
      skipped: [],
    };
    const p99 = verdicts(result).find((v) => v.goal.includes('p99'))!;
    expect(p99.met).toBe(false);
    expect(p99.detail).toContain('paced by the generator');
    result.steps[0] = at('herald-ws', 5.8, 70.5, 30);
    expect(verdicts(result).find((v) => v.goal.includes('p99'))!.detail).not.toContain('generator');
  });

  it('sends the reader of a missed target to where the time goes', () => {
    const m = {
      date: '2026-12-04',
      nproc: 2,
      cpu: 'cpu',
      memGiB: 24,
      node: 'v20',
      commit: 'c',
      loadBefore: 0,
      loadAfter: 0,
    };
    const result: ScenarioResult = {
      spec: s2,
      steps: [at('herald-ws', 5.8, 70.5, 30), at('nchan-ws', 6.4, 70.1, 30), at('socketio', 13, 1000, 40)],
      rounds: [],
      memory: [],
      storms: [],
      skipped: [],
    };
    const missed = markdownReport([result], m, 'cmd', new Map(), undefined);
    expect(missed).toContain('**not met** — Herald p99 below');
    expect(missed).toContain('docs/performance.md#where-heralds-time-goes');
    expect(markdownReport([result], m, 'cmd', new Map(), 'PROFILE')).toContain('the CPU profile at the end');
    result.steps[0] = at('herald-ws', 5.8, 60, 30);
    expect(markdownReport([result], m, 'cmd', new Map(), undefined)).not.toContain('where-heralds-time-goes');
  });
});
