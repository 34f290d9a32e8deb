/**
 * The canary judge's configuration and results: the plain types the workflow's judge works on, and the zod schema
 * `slipway canary judge` and slipway.yaml's canary section parse with. Workflow code imports only the types.
 */
import { z } from 'zod';

export type Classification = 'Pass' | 'High' | 'Low' | 'Nodata' | 'NodataFailMetric' | 'Error';
export type Direction = 'increase' | 'decrease' | 'either';

export interface MetricConfig {
  name: string;
  groups: string[];
  direction: Direction;
  critical: boolean;
  mustHaveData: boolean;
  nanStrategy: 'remove' | 'replace';
  outliers: { strategy: 'keep' | 'remove'; factor: number };
  effectSize: { measure: 'meanRatio' | 'cles'; allowedIncrease: number; allowedDecrease: number; criticalIncrease: number; criticalDecrease: number };
}

export interface JudgeConfig {
  judge: { confidenceLevel: number; tolerance: number };
  metrics: MetricConfig[];
  groupWeights: Record<string, number>;
  thresholds: { pass: number; marginal: number };
}

export interface MetricResult {
  name: string;
  groups: string[];
  classification: Classification;
  critical: boolean;
  confidenceInterval?: [number, number];
  estimate?: number;
  effectSize?: number;
  /** Kayenta's "deviation": the effect size, 1 when there was nothing to compare. */
  deviation: number;
  reason?: string;
}

export interface JudgeResult {
  score: number;
  result: 'Pass' | 'Marginal' | 'Fail';
  groups: { name: string; score: number }[];
  metrics: MetricResult[];
  reason?: string;
}


// Kayenta validates none of these numbers and neither bound is required to sit on either side of "no effect": a
// mean-ratio criticalDecrease of 1.2 makes every Low critical, a CLES critical bound of 1.0 is Kayenta's default.
// Refused is only what has no meaning: a negative or non-finite ratio, a CLES (a probability) outside [0, 1].
const threshold = z.number('must be a number').min(0, 'must not be negative (an effect size is a ratio or a probability)').optional();

const effectSizeSchema = z
  .strictObject({
    measure: z.enum(['meanRatio', 'cles']).default('meanRatio'),
    allowedIncrease: threshold,
    allowedDecrease: threshold,
    criticalIncrease: threshold,
    criticalDecrease: threshold,
  })
  .superRefine((e, ctx) => {
    if (e.measure !== 'cles') return;
    for (const key of ['allowedIncrease', 'allowedDecrease', 'criticalIncrease', 'criticalDecrease'] as const) {
      const v = e[key];
      if (v !== undefined && v > 1) ctx.addIssue({ code: 'custom', path: [key], message: 'must be between 0 and 1 for cles (a probability)' });
    }
  })
  .transform((e) => {
    // Unset bounds sit at "no effect" (1 for the mean ratio, 0.5 for CLES), as the judge's defaults: no effect-size
    // requirement, and every High or Low of a critical metric is critical.
    const neutral = e.measure === 'cles' ? 0.5 : 1;
    return {
      measure: e.measure,
      allowedIncrease: e.allowedIncrease ?? neutral,
      allowedDecrease: e.allowedDecrease ?? neutral,
      criticalIncrease: e.criticalIncrease ?? neutral,
      criticalDecrease: e.criticalDecrease ?? neutral,
    };
  });

const metricSchema = z.strictObject({
  name: z.string().min(1).max(200),
  groups: z.array(z.string().min(1).max(100)).min(1, 'must name at least one group'),
  direction: z.enum(['increase', 'decrease', 'either']).default('either'),
  critical: z.boolean().default(false),
  mustHaveData: z.boolean().default(false),
  nanStrategy: z.enum(['remove', 'replace']).default('remove'),
  outliers: z.strictObject({ strategy: z.enum(['keep', 'remove']).default('keep'), factor: z.number().positive('must be positive').default(3) }).default({ strategy: 'keep', factor: 3 }),
  // prefault, not default: zod 4 returns a default as-is, and the transform must fill in the thresholds.
  effectSize: effectSizeSchema.prefault({ measure: 'meanRatio' }),
});

export const judgeConfigSchema = z
  .strictObject({
    // The NetflixACAJudge's defaults.
    judge: z
      .strictObject({
        confidenceLevel: z.number().gt(0, 'must be between 0 and 1 (exclusive)').lt(1, 'must be between 0 and 1 (exclusive)').default(0.98),
        tolerance: z.number().min(0, 'must not be negative').default(0.25),
      })
      .default({ confidenceLevel: 0.98, tolerance: 0.25 }),
    metrics: z.array(metricSchema).min(1, 'must list at least one metric'),
    groupWeights: z.record(z.string(), z.number().min(0, 'must not be negative')).default({}),
    thresholds: z
      .strictObject({ pass: z.number().min(0).max(100, 'must be at most 100').default(95), marginal: z.number().min(0, 'must not be negative').max(100).default(75) })
      .default({ pass: 95, marginal: 75 }),
  })
  .superRefine((c, ctx) => {
    if (c.thresholds.marginal > c.thresholds.pass) ctx.addIssue({ code: 'custom', path: ['thresholds', 'marginal'], message: `must not exceed thresholds.pass (${c.thresholds.pass})` });
    const names = new Set<string>();
    c.metrics.forEach((m, i) => {
      if (names.has(m.name)) ctx.addIssue({ code: 'custom', path: ['metrics', i, 'name'], message: `duplicates metric "${m.name}"` });
      names.add(m.name);
    });
    const groups = new Set(c.metrics.flatMap((m) => m.groups));
    for (const g of Object.keys(c.groupWeights)) if (!groups.has(g)) ctx.addIssue({ code: 'custom', path: ['groupWeights', g], message: 'names a group no metric belongs to' });
    const weights = Object.values(c.groupWeights);
    if (weights.length && weights.reduce((a, b) => a + b, 0) <= 0) ctx.addIssue({ code: 'custom', path: ['groupWeights'], message: 'must not all be zero' });
  });

// The schema's output is the judge's input: a change to either that breaks this fails to compile (no cast needed).
export const asJudgeConfig = (parsed: z.output<typeof judgeConfigSchema>): JudgeConfig => parsed;
