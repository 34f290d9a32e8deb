/**
 * `slipway canary judge`: the canary judge on its own — a config (YAML or JSON) and a data file in, Kayenta's
 * verdict out. Bad configs are refused with the path of the field and the rule, before anything is judged.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { formatIssues } from '../workflows/config';
import { judge, type JudgeConfig, type JudgeResult } from '../workflows/canary/judge';
import { UsageError } from './config';

const effectSizeSchema = z
  .strictObject({
    measure: z.enum(['meanRatio', 'cles']).default('meanRatio'),
    allowedIncrease: z.number().optional(),
    allowedDecrease: z.number().optional(),
    criticalIncrease: z.number().optional(),
    criticalDecrease: z.number().optional(),
  })
  .transform((e) => {
    // Kayenta's defaults: no effect-size requirement (1 for the mean ratio, 0.5 for CLES).
    const neutral = e.measure === 'cles' ? 0.5 : 1;
    return {
      measure: e.measure,
      allowedIncrease: e.allowedIncrease ?? neutral,
      allowedDecrease: e.allowedDecrease ?? neutral,
      criticalIncrease: e.criticalIncrease ?? neutral,
      criticalDecrease: e.criticalDecrease ?? neutral,
    };
  })
  .superRefine((e, ctx) => {
    const neutral = e.measure === 'cles' ? 0.5 : 1;
    const check = (key: keyof typeof e, ok: boolean, rule: string) => ok || ctx.addIssue({ code: 'custom', path: [key], message: rule });
    check('allowedIncrease', e.allowedIncrease >= neutral, `must be at least ${neutral} for ${e.measure}`);
    check('allowedDecrease', e.allowedDecrease <= neutral && e.allowedDecrease >= 0, `must be between 0 and ${neutral} for ${e.measure}`);
    check('criticalIncrease', e.criticalIncrease >= neutral, `must be at least ${neutral} for ${e.measure}`);
    check('criticalDecrease', e.criticalDecrease <= neutral && e.criticalDecrease >= 0, `must be between 0 and ${neutral} for ${e.measure}`);
    if (e.measure === 'cles') {
      check('allowedIncrease', e.allowedIncrease <= 1, 'must be at most 1 for cles (a probability)');
      check('criticalIncrease', e.criticalIncrease <= 1, 'must be at most 1 for cles (a probability)');
    }
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

const valueSchema = z.union([z.number(), z.null(), z.literal('NaN')]).transform((v) => (typeof v === 'number' ? v : NaN));
export const judgeDataSchema = z.strictObject({
  metrics: z.array(z.strictObject({ name: z.string(), baseline: z.array(valueSchema), canary: z.array(valueSchema) })),
});

function readDoc(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${what}: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text); // YAML is a superset of JSON
  } catch (err) {
    throw new UsageError(`${what}: ${file} is neither YAML nor JSON: ${(err as Error).message}`);
  }
}

export function loadJudgeConfig(file: string): JudgeConfig {
  const r = judgeConfigSchema.safeParse(readDoc(file, '--config'));
  if (!r.success) throw new UsageError(`${file} is not a valid judge config:\n${formatIssues(r.error)}`);
  return r.data as JudgeConfig;
}

export function runJudge(configFile: string, dataFile: string): JudgeResult {
  const config = loadJudgeConfig(configFile);
  const r = judgeDataSchema.safeParse(readDoc(dataFile, '--data'));
  if (!r.success) throw new UsageError(`${dataFile} is not valid judge data:\n${formatIssues(r.error)}`);
  const known = new Set(config.metrics.map((m) => m.name));
  r.data.metrics.forEach((m, i) => {
    if (!known.has(m.name)) throw new UsageError(`metrics.${i}.name: "${m.name}" is not a metric of ${configFile}`);
  });
  return judge(config, r.data.metrics);
}

/** JSON has no NaN: an effect size that cannot be computed is written as null. */
export const judgeJson = (r: JudgeResult): unknown =>
  JSON.parse(JSON.stringify({
    score: r.score,
    result: r.result,
    ...(r.reason ? { reason: r.reason } : {}),
    groups: r.groups,
    metrics: r.metrics.map((m) => ({ name: m.name, classification: m.classification, critical: m.critical, confidenceInterval: m.confidenceInterval ?? null, estimate: m.estimate ?? null, effectSize: m.effectSize ?? null, deviation: m.deviation, ...(m.reason ? { reason: m.reason } : {}) })),
  }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));

export function renderJudge(r: JudgeResult): string {
  const lines = [`${r.result} — score ${r.score.toFixed(2)}${r.reason ? ` (${r.reason})` : ''}`, ...r.groups.map((g) => `  group ${g.name}: ${g.score.toFixed(2)}`)];
  for (const m of r.metrics) lines.push(`  ${m.classification.padEnd(16)} ${m.name}${m.critical ? ' [critical]' : ''}${m.reason ? ` — ${m.reason}` : ''}`);
  return lines.join('\n');
}
