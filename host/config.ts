/** Reads slipway.yaml from disk and checks what only the checkout can tell (the chart is there). */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SlipwayConfig } from '../model/config';
import { UsageError } from '../model/errors';
import { parseConfig } from '../model/plan';
import { keyDirFor } from './keys';

/** Where the local stack's key pairs are: slipway.yaml's identity.keyDir, else $SLIPWAY_HOME/keys. */
export const keyDirOf = (cfg: SlipwayConfig, env: NodeJS.ProcessEnv = process.env): string => keyDirFor(cfg.identity, env);

export function loadConfig(file: string): SlipwayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message} (pass --config or set SLIPWAY_CONFIG)`);
  }
  if (text.length > 1_000_000) throw new UsageError(`${file} is larger than 1 MB`);
  return parseConfig(text, file);
}

/**
 * The chart must exist in the repository (the directory holding slipway.yaml): a missing chart is refused before
 * anything is built, pushed or deployed. The builder checks again where it packages (symlinks included).
 */
export function checkChart(cfg: SlipwayConfig, service: string, repoRoot: string): void {
  const chart = cfg.services[service]?.chart;
  if (!chart) return;
  const dir = resolve(repoRoot, chart.path);
  if (!existsSync(join(dir, 'Chart.yaml'))) {
    throw new UsageError(`services.${service}.chart.path: no Helm chart at "${chart.path}" (expected ${join(dir, 'Chart.yaml')})`);
  }
}
