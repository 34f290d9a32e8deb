/**
 * `slipway canary judge`: the canary judge on its own — a config (YAML or JSON) and a data file in, Kayenta's
 * verdict out. Bad configs are refused with the path of the field and the rule, before anything is judged.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { formatIssues } from '../model/config';
import { judge } from '../workflows/canary/judge';
import { asJudgeConfig, judgeConfigSchema, type JudgeConfig, type JudgeResult } from '../model/canary';

export { judgeConfigSchema };
import { UsageError } from '../model/errors';

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
  return asJudgeConfig(r.data);
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
