/**
 * The canary loop's incremental measurement, without Temporal: each interval's range starts at the first Prometheus
 * evaluation instant after the previous interval's end (nextGridPoint), the samples are joined in memory
 * (CanarySamples), and the judge then sees exactly the points one query over the whole analysis returns — so it
 * gives the same scores as the cumulative loop.
 */
import fc from 'fast-check';
import { syntheticRange } from '../../bench/canary-state';
import type { JudgeConfig } from '../../model/canary';
import { judge } from '../../workflows/canary/judge';
import { CanarySamples, nextGridPoint } from '../../workflows/release/canary-loop';

const QUERIES = [
  { name: 'errors', query: 'errors{track="$track"}' },
  { name: 'latency', query: 'latency{track="$track"}' },
];
/** A synthetic Prometheus range query for every metric, as the measureCanary activity returns it. */
const measure = (anchor: number, start: number, end: number, step: number) =>
  QUERIES.map((q) => ({ name: q.name, baseline: syntheticRange(q.query.replace('$track', 'baseline'), anchor, start, end, step), canary: syntheticRange(q.query.replace('$track', 'canary'), anchor, start, end, step) }));

const metric = (name: string): JudgeConfig['metrics'][number] => ({
  name, groups: [name], direction: 'increase', critical: false, mustHaveData: false, nanStrategy: 'replace',
  outliers: { strategy: 'keep', factor: 3 }, effectSize: { measure: 'meanRatio', allowedIncrease: 1, allowedDecrease: 1, criticalIncrease: 1, criticalDecrease: 1 },
});
const CONFIG: JudgeConfig = { judge: { confidenceLevel: 0.98, tolerance: 0.25 }, groupWeights: { errors: 80, latency: 20 }, thresholds: { pass: 50, marginal: 10 }, metrics: [metric('errors'), metric('latency')] };

/** Both loops over the same interval ends: the judgement after each interval, and how many points were fetched. */
function loops(since: number, ends: number[], stepSeconds: number) {
  const stepMs = stepSeconds * 1000;
  const samples = new CanarySamples();
  let measuredTo: number | undefined;
  let fetched = 0;
  const cumulative: unknown[] = [];
  const incremental: unknown[] = [];
  for (const end of ends) {
    const whole = measure(since, since, end, stepSeconds);
    cumulative.push({ data: whole, judged: judge(CONFIG, whole) });
    const from = measuredTo === undefined ? since : nextGridPoint(since, measuredTo, stepMs);
    if (from <= end) {
      const fresh = measure(since, from, end, stepSeconds);
      fetched += fresh[0].baseline.length;
      samples.add(fresh);
    }
    measuredTo = end;
    incremental.push({ data: structuredClone(samples.all()), judged: judge(CONFIG, samples.all()) });
  }
  return { cumulative, incremental, fetched, total: measure(since, since, ends.at(-1)!, stepSeconds)[0].baseline.length };
}

test('nextGridPoint: the first evaluation instant strictly after what was measured', () => {
  expect(nextGridPoint(1000, 1000, 10_000)).toBe(11_000);
  expect(nextGridPoint(1000, 10_999, 10_000)).toBe(11_000);
  expect(nextGridPoint(1000, 11_000, 10_000)).toBe(21_000);
  expect(nextGridPoint(1000, 61_000, 60_000)).toBe(121_000);
});

test('CanarySamples joins each interval\'s points per metric and track, in order', () => {
  const s = new CanarySamples();
  s.add([{ name: 'a', baseline: [1], canary: [2] }]);
  s.add([{ name: 'b', baseline: [], canary: [9] }, { name: 'a', baseline: [3, 5], canary: [4] }]);
  expect(s.all()).toEqual([{ name: 'a', baseline: [1, 3, 5], canary: [2, 4] }, { name: 'b', baseline: [], canary: [9] }]);
});

test('a regular analysis: every interval judged on exactly the cumulative query\'s points, each point fetched once', () => {
  const since = Date.UTC(2026, 0, 1, 12, 0, 0, 123);
  const ends = Array.from({ length: 20 }, (_, k) => since + (k + 1) * 60_000);
  const { cumulative, incremental, fetched, total } = loops(since, ends, 10);
  expect(incremental).toEqual(cumulative);
  expect(fetched).toBe(total);
  // The data moves the judgement, so equality is not trivial.
  const scores = new Set((cumulative as { judged: { score: number } }[]).map((c) => c.judged.score));
  expect(scores.size).toBeGreaterThan(1);
});

test('any interval ends (drifting, shorter or longer than the step): the same points and scores as the cumulative query', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2_000_000_000 }),
      fc.integer({ min: 1, max: 30 }),
      // A gap in ms, or (negative) a whole number of steps: ends that fall on an evaluation instant are the edge case.
      fc.array(fc.oneof(fc.integer({ min: 1, max: 90_000 }), fc.integer({ min: -6, max: -1 })), { minLength: 1, maxLength: 15 }),
      (sinceSeconds, stepSeconds, gaps) => {
        const since = sinceSeconds * 1000 + (sinceSeconds % 1000);
        const ends = gaps.reduce<number[]>((xs, g) => [...xs, (xs.at(-1) ?? since) + (g > 0 ? g : -g * stepSeconds * 1000)], []);
        const { cumulative, incremental, fetched, total } = loops(since, ends, stepSeconds);
        expect(incremental).toEqual(cumulative);
        expect(fetched).toBe(total);
      },
    ),
    { numRuns: 100 },
  );
});
