/**
 * The canary loop's state (issue #12): each interval fetches only its new points and the workflow keeps the samples,
 * so the history grows linearly with the interval count — and the judgement is the same as when every interval
 * queried the whole analysis so far. Both loops run the shipped workflow code on a time-skipping server over the same
 * synthetic Prometheus data: the incremental one from the tier's bundle, the cumulative one bundled with the
 * canary-incremental-measure patch answering false (as a replay of an older run sees it).
 */
import { readFileSync } from 'node:fs';
import { runCanaryState, type CanaryStateRun } from '../../bench/canary-state';
import { workflowStack } from '../setup/stack-info';

const judged = (r: CanaryStateRun) => r.scores.map((s) => ({ step: s.step, weight: s.weight, score: s.score, result: s.result, metrics: s.metrics }));
const find = (runs: CanaryStateRun[], mode: CanaryStateRun['mode'], n: number) => runs.find((r) => r.mode === mode && r.intervals === n)!;

let runs: CanaryStateRun[];
let shortIntervals: CanaryStateRun[];
beforeAll(async () => {
  const bundles = { incremental: readFileSync(workflowStack().bundlePath, 'utf8') };
  runs = await runCanaryState({ counts: [4, 12], bundles });
  // A 20 s interval (three points), then intervals of 5 s with a 10 s Prometheus step: every other one has no new point.
  const steps = '[ { setWeight: 20 }, { analysis: { duration: 20s, interval: 20s } }, { analysis: { duration: 30s, interval: 5s } } ]';
  shortIntervals = await runCanaryState({ counts: [7], stepSeconds: 10, steps, bundles });
}, 600_000);

test('the incremental loop judges every interval exactly as the cumulative one, on the same data', () => {
  for (const n of [4, 12]) {
    const [c, i] = [find(runs, 'cumulative', n), find(runs, 'incremental', n)];
    expect(c.phase).toBe('succeeded');
    expect(i.phase).toBe('succeeded');
    expect(c.scores).toHaveLength(n);
    expect(judged(i)).toEqual(judged(c));
  }
  // The data moves the judgement (latency turns High as points accrue), so equal scores are not equal by default.
  const scores = find(runs, 'cumulative', 12).scores;
  expect(scores[0].metrics.find((m) => m.name === 'latency')?.classification).toBe('Pass');
  expect(scores.at(-1)!.metrics.find((m) => m.name === 'latency')?.classification).toBe('High');
  expect(new Set(scores.map((s) => s.metrics[1].deviation)).size).toBe(12);
});

test('each interval fetches only its new points: results stay the same size and history bytes grow linearly', () => {
  const [c4, c12, i4, i12] = [find(runs, 'cumulative', 4), find(runs, 'cumulative', 12), find(runs, 'incremental', 4), find(runs, 'incremental', 12)];
  expect(i12.measures).toBe(12);
  expect(c12.measures).toBe(12);
  // Incremental: every result holds one interval's points; cumulative: the last holds all twelve intervals'.
  expect(i12.largestResultBytes).toBeLessThan(i4.largestResultBytes * 1.1);
  expect(c12.largestResultBytes).toBeGreaterThan(c4.largestResultBytes * 2.5);
  // The same events but the patch's marker (and its search-attribute upsert).
  expect(i12.events - c12.events).toBe(i4.events - c4.events);
  expect(i12.events - c12.events).toBeLessThanOrEqual(2);
  // Measurement bytes per interval: flat for incremental, growing with the interval count for cumulative.
  expect(i12.resultBytes / 12).toBeLessThan((i4.resultBytes / 4) * 1.1);
  expect(c12.resultBytes / 12).toBeGreaterThan((c4.resultBytes / 4) * 2);
  // What the 8 intervals from the 4th to the 12th added to the whole history.
  expect((c12.bytes - c4.bytes) / (i12.bytes - i4.bytes)).toBeGreaterThan(2);
});

test('an interval shorter than the Prometheus step: intervals with no new point fetch nothing; scores still the same', () => {
  const [c, i] = [find(shortIntervals, 'cumulative', 7), find(shortIntervals, 'incremental', 7)];
  expect(c.phase).toBe('succeeded');
  expect(c.measures).toBe(7);
  expect(i.measures).toBeLessThanOrEqual(5);
  expect(i.measures).toBeGreaterThanOrEqual(3);
  expect(i.scores).toHaveLength(7);
  expect(judged(i)).toEqual(judged(c));
});
