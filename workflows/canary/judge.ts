/**
 * A Kayenta-compatible canary judge (NetflixACAJudge with the Mann-Whitney classifier and the weighted-sum scorer),
 * pure and zod-free so the release workflow can run it and keep every decision in its history.
 * Reproduces the vectors in shared/reference/kayenta/vectors.json (see test/unit/canary-judge.test.ts).
 */
import type { Classification, Direction, JudgeConfig, JudgeResult, MetricConfig, MetricResult } from '../../model/canary';
import { cles, iqrOutliers, mannWhitney, mean, meanRatio } from './stats';

/** Deterministic uniform numbers in [0, 1) (mulberry32). */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic standard-normal noise (Box-Muller): the judge must give the same answer on replay. */
export function seededGaussian(seed = 0x5117a7): () => number {
  const uniform = seededUniform(seed);
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

const isConstant = (xs: number[]) => xs.every((v) => v === xs[0]);
const sortedEqual = (a: number[], b: number[]) => {
  if (a.length !== b.length) return false;
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  return x.every((v, i) => v === y[i]);
};

export interface ClassifierParams {
  tolerance: number;
  confidenceLevel: number;
}

/** Kayenta's MannWhitneyClassifier. `control` is the baseline, `experiment` the canary. */
export function classifyMannWhitney(metric: MetricConfig, controlRaw: number[], experimentRaw: number[], params: ClassifierParams, gaussian = seededGaussian()): MetricResult {
  const base = { name: metric.name, groups: metric.groups };
  const clean = (xs: number[]) => {
    const noNaN = metric.nanStrategy === 'replace' ? xs.map((v) => (Number.isNaN(v) ? 0 : v)) : xs.filter((v) => !Number.isNaN(v));
    if (metric.outliers.strategy !== 'remove') return noNaN;
    const out = iqrOutliers(noNaN, metric.outliers.factor);
    return noNaN.filter((_, i) => !out[i]);
  };
  let control = clean(controlRaw);
  let experiment = clean(experimentRaw);

  if (control.length === 0 || experiment.length === 0) {
    // With NaN replacement, missing data reads as zeros, which cannot be told apart: Pass.
    if (metric.nanStrategy === 'replace') return { ...base, classification: 'Pass', critical: false, deviation: 1 };
    return { ...base, classification: metric.mustHaveData ? 'NodataFailMetric' : 'Nodata', critical: metric.critical, deviation: 1, reason: `Missing data for ${control.length === 0 ? 'the baseline' : 'the canary'}` };
  }
  if (sortedEqual(control, experiment)) return { ...base, classification: 'Pass', critical: false, deviation: 1, reason: 'The canary and baseline data are identical' };
  if (isConstant([...control, ...experiment])) return { ...base, classification: 'Pass', critical: false, deviation: 1 };
  // Two constant series tie every rank: jitter them (relative 1e-5) so the interval can be computed, as Kayenta does.
  if (isConstant(control) && isConstant(experiment)) {
    control = control.map((v) => v + gaussian() * v * 1e-5);
    experiment = experiment.map((v) => v + gaussian() * v * 1e-5);
  }

  const mw = mannWhitney(experiment, control, params.confidenceLevel);
  const bound = params.tolerance * Math.abs(mw.estimate);
  const es = metric.effectSize;
  const effectSize = es.measure === 'cles' ? cles(control, experiment) : meanRatio(control, experiment);
  // An effect size that cannot be computed (a zero mean) does not hold a classification back.
  const atLeast = (t: number) => Number.isNaN(effectSize) || effectSize >= t;
  const atMost = (t: number) => Number.isNaN(effectSize) || effectSize <= t;
  const stats = { confidenceInterval: [mw.lowerConfidence, mw.upperConfidence] as [number, number], estimate: mw.estimate, effectSize, deviation: effectSize };
  if (metric.direction !== 'decrease' && mw.lowerConfidence > bound && atLeast(es.allowedIncrease)) {
    return { ...base, ...stats, classification: 'High', critical: metric.critical && atLeast(es.criticalIncrease), reason: `The canary is higher than the baseline (lower confidence bound ${mw.lowerConfidence.toPrecision(4)} > ${bound.toPrecision(4)})` };
  }
  if (metric.direction !== 'increase' && mw.upperConfidence < -bound && atMost(es.allowedDecrease)) {
    return { ...base, ...stats, classification: 'Low', critical: metric.critical && atMost(es.criticalDecrease), reason: `The canary is lower than the baseline (upper confidence bound ${mw.upperConfidence.toPrecision(4)} < ${(-bound).toPrecision(4)})` };
  }
  return { ...base, ...stats, classification: 'Pass', critical: false };
}

/** Kayenta's MeanInequalityClassifier (a simple reference classifier). */
export function classifyMeanInequality(direction: Direction, control: number[], experiment: number[]): Classification {
  const c = mean(control);
  const e = mean(experiment);
  if (direction !== 'decrease' && e > c) return 'High';
  if (direction !== 'increase' && e < c) return 'Low';
  return 'Pass';
}

const FAILED: Classification[] = ['High', 'Low', 'Nodata', 'NodataFailMetric', 'Error'];

/** Kayenta's weighted-sum group scorer. */
export function scoreGroups(results: Pick<MetricResult, 'classification' | 'critical' | 'groups'>[], groupWeights: Record<string, number>): { summaryScore: number; groups: { name: string; score: number }[] } {
  const names = [...new Set(results.flatMap((r) => r.groups))];
  const groups = names.map((name) => {
    const inGroup = results.filter((r) => r.groups.includes(name));
    // Nodata metrics neither pass nor fail a group; NodataFailMetric fails it.
    const counted = inGroup.filter((r) => r.classification !== 'Nodata');
    const passed = counted.filter((r) => r.classification === 'Pass').length;
    return { name, score: counted.length ? (passed / counted.length) * 100 : 0, counted: counted.length > 0 };
  });
  const hasWeights = Object.keys(groupWeights).length > 0;
  const scored = groups.filter((g) => g.counted);
  const weight = (g: { name: string }) => (hasWeights ? (groupWeights[g.name] ?? 0) : 1);
  const totalWeight = scored.reduce((sum, g) => sum + weight(g), 0);
  let summaryScore = totalWeight > 0 ? scored.reduce((sum, g) => sum + weight(g) * g.score, 0) / totalWeight : 0;
  if (results.some((r) => r.critical && FAILED.includes(r.classification))) summaryScore = 0;
  return { summaryScore, groups: groups.map(({ name, score }) => ({ name, score })) };
}

/** Judges one interval: classify every metric, score the groups, apply the thresholds. */
export function judge(config: JudgeConfig, data: { name: string; baseline: number[]; canary: number[] }[], gaussian = seededGaussian()): JudgeResult {
  const byName = new Map(data.map((d) => [d.name, d]));
  const metrics = config.metrics.map((m) => {
    const d = byName.get(m.name);
    try {
      return classifyMannWhitney(m, d?.baseline ?? [], d?.canary ?? [], { tolerance: config.judge.tolerance, confidenceLevel: config.judge.confidenceLevel }, gaussian);
    } catch (err) {
      return { name: m.name, groups: m.groups, classification: 'Error' as const, critical: m.critical, deviation: NaN, reason: (err as Error).message };
    }
  });
  const { summaryScore, groups } = scoreGroups(metrics, config.groupWeights);
  const nodata = metrics.filter((m) => m.classification === 'Nodata' || m.classification === 'NodataFailMetric').length;
  let score = summaryScore;
  let reason: string | undefined;
  if (metrics.some((m) => m.critical && FAILED.includes(m.classification))) reason = 'a critical metric failed';
  // Too little data to judge is never a pass.
  if (metrics.length === 0 || nodata / metrics.length >= 0.5) {
    score = 0;
    reason = `${nodata} of ${metrics.length} metrics had no data`;
  }
  const result = score >= config.thresholds.pass ? 'Pass' : score >= config.thresholds.marginal ? 'Marginal' : 'Fail';
  return { score, result, groups, metrics, ...(reason ? { reason } : {}) };
}
