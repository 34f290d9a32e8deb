/**
 * The canary judge against every Kayenta reference vector (shared/reference/kayenta/vectors.json), within the
 * tolerances the vectors state, plus property tests of its statistics.
 */
import fc from 'fast-check';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyMannWhitney, classifyMeanInequality, judge, scoreGroups, seededGaussian } from '../../workflows/canary/judge';
import { type MetricConfig } from '../../model/canary';
import { cles, iqrOutliers, mannWhitney, meanRatio, wilcoxonDiff } from '../../workflows/canary/stats';

// The reference vectors live in the steering repo's shared/, which CI places beside the clone.
const VECTORS = join(__dirname, '..', '..', '..', 'shared', 'reference', 'kayenta', 'vectors.json');
if (!existsSync(VECTORS)) throw new Error(`Kayenta reference vectors not found at ${VECTORS} (shared/ must sit beside the repository)`);
const vectors: any[] = JSON.parse(readFileSync(VECTORS, 'utf8'));
const num = (xs: (number | string)[]) => xs.map((x) => (x === 'NaN' ? NaN : (x as number)));
const close = (got: number, want: number | string, tol: number) => {
  if (want === 'NaN') expect(got).toBeNaN();
  else expect(Math.abs(got - (want as number))).toBeLessThanOrEqual(tol + 1e-12);
};
const ofKind = (kind: string) => vectors.filter((v) => v.kind === kind).map((v) => [v.name, v] as const);

test('all 66 vectors are here', () => {
  expect(vectors).toHaveLength(66);
});

test.each(ofKind('wilcoxonDiff'))('%s', (_n, v) => {
  v.params.calls.forEach((c: { mu: number; quantile: number }, i: number) => close(wilcoxonDiff(c.mu, c.quantile, num(v.experiment), num(v.control)), v.expected.values[i], v.expected.tolerance));
});

test.each(ofKind('mannWhitneyUTest'))('%s', (_n, v) => {
  const r = mannWhitney(num(v.experiment), num(v.control), v.params.confidenceLevel);
  close(r.lowerConfidence, v.expected.confidenceInterval[0], v.expected.ciTolerance);
  close(r.upperConfidence, v.expected.confidenceInterval[1], v.expected.ciTolerance);
  close(r.estimate, v.expected.estimate, v.expected.estimateTolerance);
});

const metricFrom = (p: any): MetricConfig => ({
  name: 'm',
  groups: ['g'],
  direction: p.direction,
  critical: p.isCriticalMetric,
  mustHaveData: p.isDataRequired,
  nanStrategy: p.nanStrategy,
  outliers: { strategy: 'keep', factor: 3 },
  effectSize: { measure: p.effectSizeMeasure, allowedDecrease: p.effectSizeThresholds[0], allowedIncrease: p.effectSizeThresholds[1], criticalDecrease: p.criticalThresholds[0], criticalIncrease: p.criticalThresholds[1] },
});

test.each(ofKind('mannWhitneyClassifier'))('%s', (_n, v) => {
  const r = classifyMannWhitney(metricFrom(v.params), num(v.control), num(v.experiment), { tolerance: v.params.tolerance, confidenceLevel: v.params.confLevel });
  if (v.expected.classification) expect(r.classification).toBe(v.expected.classification);
  if (v.expected.critical !== undefined) expect(r.critical).toBe(v.expected.critical);
  if (v.expected.deviation !== undefined) close(r.deviation, v.expected.deviation, 1e-9);
  if (v.expected.reasonNonEmpty) expect(r.reason).toBeTruthy();
  // Where an independent port recorded the statistics, ours agree.
  const d = v.derived ?? {};
  if (typeof d.lowerConfidence === 'number') close(r.confidenceInterval![0], d.lowerConfidence, 1e-6);
  if (typeof d.upperConfidence === 'number') close(r.confidenceInterval![1], d.upperConfidence, 1e-6);
  if (typeof d.effectSize === 'number') close(r.effectSize!, d.effectSize, 1e-9);
});

test.each(ofKind('meanInequalityClassifier'))('%s', (_n, v) => {
  expect(classifyMeanInequality(v.params.direction, num(v.control), num(v.experiment))).toBe(v.expected.classification);
});

test.each(ofKind('effectSize'))('%s', (_n, v) => {
  const got = v.params.measure === 'cles' ? cles(num(v.control), num(v.experiment)) : meanRatio(num(v.control), num(v.experiment));
  close(got, v.expected.value, v.expected.tolerance);
});

test.each(ofKind('iqrDetector'))('%s', (_n, v) => {
  expect(iqrOutliers(num(v.experiment), v.params.factor)).toEqual(v.expected.outliers);
});

test.each(ofKind('weightedSumScorer'))('%s', (_n, v) => {
  const r = scoreGroups(v.params.results, v.params.groupWeights);
  close(r.summaryScore, v.expected.summaryScore, 0.01);
  if (v.expected.groupScores) expect(r.groups.map((g) => g.score)).toEqual(v.expected.groupScores);
  if (v.expected.groupScoresSorted) expect(r.groups.map((g) => g.score).sort((a, b) => a - b)).toEqual(v.expected.groupScoresSorted);
});

describe('properties', () => {
  const metric = metricFrom({ direction: 'either', isCriticalMetric: false, isDataRequired: false, nanStrategy: 'remove', effectSizeMeasure: 'meanRatio', effectSizeThresholds: [1, 1], criticalThresholds: [1, 1] });
  const sample = (g: () => number, n: number, mu: number, sd: number) => Array.from({ length: n }, () => mu + sd * g());

  test('identical distributions rarely fail: about the confidence level', () => {
    const g = seededGaussian(42);
    let failed = 0;
    const runs = 300;
    for (let i = 0; i < runs; i++) {
      const r = classifyMannWhitney(metric, sample(g, 50, 100, 10), sample(g, 50, 100, 10), { tolerance: 0, confidenceLevel: 0.95 });
      if (r.classification !== 'Pass') failed++;
    }
    // With tolerance 0 the two-sided 95 % interval excludes 0 about 5 % of the time.
    expect(failed / runs).toBeLessThan(0.1);
  });

  test('swapping canary and baseline swaps High and Low', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e6 }), fc.double({ min: 0.5, max: 3, noNaN: true }), (seed, shift) => {
        const g = seededGaussian(seed);
        const a = sample(g, 30, 10, 1);
        const b = sample(g, 30, 10 + shift, 1);
        const params = { tolerance: 0.1, confidenceLevel: 0.95 };
        const ab = classifyMannWhitney(metric, a, b, params).classification;
        const ba = classifyMannWhitney(metric, b, a, params).classification;
        const swapped = { High: 'Low', Low: 'High', Pass: 'Pass' } as Record<string, string>;
        expect(ba).toBe(swapped[ab]);
      }),
      { numRuns: 100 },
    );
  });

  test('the judge never passes when half the metrics have no data, or a critical metric fails', () => {
    const config = { judge: { confidenceLevel: 0.98, tolerance: 0.25 }, groupWeights: {}, thresholds: { pass: 95, marginal: 75 }, metrics: [metric, { ...metric, name: 'n' }] };
    expect(judge(config, [{ name: 'm', baseline: [1, 2, 3], canary: [1, 2, 3] }])).toMatchObject({ score: 0, result: 'Fail', reason: '1 of 2 metrics had no data' });
    const critical = { ...config, metrics: [{ ...metric, critical: true }] };
    const g = seededGaussian(7);
    expect(judge(critical, [{ name: 'm', baseline: sample(g, 50, 100, 5), canary: sample(g, 50, 200, 5) }])).toMatchObject({ score: 0, result: 'Fail', reason: 'a critical metric failed' });
  });
});

/**
 * Item 12: every vector, with its own thresholds, as a judge config through the config validation and
 * `slipway canary judge` (runJudge reads the two files the command reads). Kayenta's own tests use thresholds the
 * validation used to refuse (CLES critical bounds of 1.0, a mean-ratio criticalDecrease of 1.2).
 */
describe('every vector through the judge config validation and `slipway canary judge`', () => {
  const { mkdtempSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
  const { tmpdir } = require('node:os') as typeof import('node:os');
  const { judgeConfigSchema, judgeJson, runJudge } = require('../../client/canary-command') as typeof import('../../client/canary-command');
  const dir = mkdtempSync(join(tmpdir(), 'slipway-vectors-'));
  let n = 0;
  const judgeFiles = (config: unknown, baseline: unknown[], canary: unknown[]) => {
    n++;
    const configFile = join(dir, `config-${n}.json`);
    const dataFile = join(dir, `data-${n}.json`);
    writeFileSync(configFile, JSON.stringify(config));
    writeFileSync(dataFile, JSON.stringify({ metrics: [{ name: 'm', baseline, canary }] }));
    return runJudge(configFile, dataFile);
  };
  const metric = (over: Record<string, unknown> = {}) => ({ name: 'm', groups: ['g'], ...over });
  const configOf = (v: any): { judge: Record<string, number>; metrics: Record<string, unknown>[]; groupWeights?: Record<string, number> } => {
    const p = v.params;
    switch (v.kind) {
      case 'mannWhitneyClassifier':
        return {
          judge: { confidenceLevel: p.confLevel, tolerance: p.tolerance },
          metrics: [
            metric({
              direction: p.direction,
              critical: p.isCriticalMetric,
              mustHaveData: p.isDataRequired,
              nanStrategy: p.nanStrategy,
              effectSize: { measure: p.effectSizeMeasure, allowedDecrease: p.effectSizeThresholds[0], allowedIncrease: p.effectSizeThresholds[1], criticalDecrease: p.criticalThresholds[0], criticalIncrease: p.criticalThresholds[1] },
            }),
          ],
        };
      case 'mannWhitneyUTest':
        return { judge: { confidenceLevel: p.confidenceLevel, tolerance: 0 }, metrics: [metric()] };
      case 'effectSize':
        return { judge: {}, metrics: [metric({ effectSize: { measure: p.measure } })] };
      case 'iqrDetector':
        return { judge: {}, metrics: [metric({ outliers: { strategy: 'remove', factor: p.factor } })] };
      case 'meanInequalityClassifier':
        return { judge: {}, metrics: [metric({ direction: p.direction })] };
      case 'weightedSumScorer': {
        const groups = [...new Set<string>(p.results.flatMap((r: any) => r.groups))];
        return { judge: {}, groupWeights: p.groupWeights, metrics: [metric({ groups }), ...p.results.map((r: any) => ({ name: r.name, groups: r.groups, critical: r.critical }))] };
      }
      default:
        return { judge: {}, metrics: [metric()] };
    }
  };

  test.each(vectors.map((v) => [v.name, v] as const))('%s', (_n, v) => {
    const config = configOf(v);
    const parsed = judgeConfigSchema.safeParse(config);
    expect(parsed.error?.issues ?? []).toEqual([]);
    const r = judgeFiles(config, v.control, v.experiment);
    const m = r.metrics.find((x) => x.name === 'm')!;
    expect(m.classification).not.toBe('Error');
    expect(() => judgeJson(r)).not.toThrow();
    if (v.kind === 'mannWhitneyClassifier') {
      if (v.expected.classification) expect(m.classification).toBe(v.expected.classification);
      if (v.expected.critical !== undefined) expect(m.critical).toBe(v.expected.critical);
      if (v.expected.reasonNonEmpty) expect(m.reason).toBeTruthy();
    }
    if (v.kind === 'mannWhitneyUTest') {
      close(m.confidenceInterval![0], v.expected.confidenceInterval[0], v.expected.ciTolerance);
      close(m.confidenceInterval![1], v.expected.confidenceInterval[1], v.expected.ciTolerance);
    }
    // Two constant series are jittered first (relative 1e-5, as Kayenta does), so the ratio moves by about that much.
    if (v.kind === 'effectSize' && m.effectSize !== undefined) close(m.effectSize, v.expected.value, Math.max(v.expected.tolerance, 1e-4 * Math.abs(Number(v.expected.value))));
  });

  test('Kayenta semantics for the thresholds its tests use: a mean-ratio criticalDecrease of 1.2 makes any Low critical', () => {
    const g = seededGaussian(11);
    const base = Array.from({ length: 40 }, () => 100 + g());
    const lower = Array.from({ length: 40 }, () => 90 + g());
    const es = (criticalDecrease: number) => ({ judge: { confidenceLevel: 0.95, tolerance: 0.1 }, metrics: [metric({ critical: true, effectSize: { criticalDecrease } })] });
    expect(judgeFiles(es(1.2), base, lower).metrics[0]).toMatchObject({ classification: 'Low', critical: true });
    // 0.8: the canary is only 10 % lower, so the Low is not critical.
    expect(judgeFiles(es(0.8), base, lower).metrics[0]).toMatchObject({ classification: 'Low', critical: false });
  });

  test.each([
    ['a negative mean-ratio bound', { allowedIncrease: -1 }, /metrics\.0\.effectSize\.allowedIncrease: must not be negative/],
    ['a NaN bound', { criticalIncrease: NaN }, /metrics\.0\.effectSize\.criticalIncrease: /],
    ['an infinite bound', { criticalDecrease: Infinity }, /metrics\.0\.effectSize\.criticalDecrease: /],
    ['a CLES bound above 1', { measure: 'cles', allowedIncrease: 1.2 }, /metrics\.0\.effectSize\.allowedIncrease: must be between 0 and 1 for cles/],
    ['a negative CLES bound', { measure: 'cles', criticalDecrease: -0.1 }, /metrics\.0\.effectSize\.criticalDecrease: must not be negative/],
    ['a string', { allowedDecrease: 'low' }, /metrics\.0\.effectSize\.allowedDecrease: must be a number/],
  ])('refuses only what has no meaning: %s', (_n, effectSize, message) => {
    const { formatIssues } = require('../../model/config') as typeof import('../../model/config');
    const r = judgeConfigSchema.safeParse({ metrics: [metric({ effectSize })] });
    expect(r.success).toBe(false);
    expect(formatIssues(r.error!)).toMatch(message);
  });

  test.each([
    ['CLES critical bounds of 1.0', { measure: 'cles', criticalIncrease: 1, criticalDecrease: 1 }],
    ['CLES bounds at 0 and 1', { measure: 'cles', allowedIncrease: 1, allowedDecrease: 0 }],
    ['a mean-ratio criticalDecrease of 1.2', { criticalDecrease: 1.2 }],
    ['a mean-ratio allowedIncrease below 1', { allowedIncrease: 0.8 }],
    ['a mean-ratio criticalIncrease of 13', { criticalIncrease: 13 }],
  ])('accepts %s (Kayenta does, and its tests use them)', (_n, effectSize) => {
    const r = judgeConfigSchema.safeParse({ metrics: [metric({ effectSize })] });
    expect(r.error?.issues ?? []).toEqual([]);
    expect(r.data!.metrics[0].effectSize).toMatchObject(effectSize);
  });
});
