/** Loads slipway.yaml and turns a start request into the workflow's release plan, refusing bad input first. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import {
  formatIssues,
  gitShaSchema,
  identitySchema,
  imageRefSchema,
  serviceNameSchema,
  parseDuration,
  scanPlanOf,
  slipwayConfigSchema,
  versionSchema,
  type CanaryConfig,
  type DeployConfig,
  type SlipwayConfig,
} from '../workflows/config';
import type { JudgeConfig } from '../workflows/canary/judge';
import { normaliseIdentity } from '../workflows/decision-token';
import { keyDirFor } from './identity/keys';
import { releaseInputSchema, type CanaryPlan, type DeployPlan, type EnvironmentPlan, type ReleaseInput } from '../workflows/types';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseConfig(text: string, file = 'slipway.yaml'): SlipwayConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 50 });
  } catch (err) {
    if (err instanceof YAMLParseError) throw new UsageError(`${file}: YAML error: ${err.message}`);
    throw err;
  }
  const r = slipwayConfigSchema.safeParse(doc ?? {});
  if (!r.success) throw new UsageError(`${file} is invalid:\n${formatIssues(r.error)}`);
  return r.data;
}

/** Where the local stack's key pairs are: slipway.yaml's identity.keyDir, else $SLIPWAY_HOME/keys. */
export const keyDirOf = (cfg: SlipwayConfig, env: NodeJS.ProcessEnv = process.env): string => keyDirFor(cfg.identity, env);

/** How long the tokens this configuration's edges sign stay valid (identity.tokenTtl; the workers accept no longer). */
export const tokenTtlSecondsOf = (cfg: SlipwayConfig): number => Math.floor(parseDuration(cfg.identity?.tokenTtl ?? '5m')! / 1000);

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

export const startRequestSchema = z.strictObject({
  service: serviceNameSchema,
  version: versionSchema,
  gitSha: gitShaSchema.optional(),
  image: imageRefSchema.optional(),
  requester: identitySchema,
  requesterToken: z.string().max(8192).optional(),
});
export type StartRequest = z.infer<typeof startRequestSchema>;

/** A validated deploy section as the workflow uses it: durations in milliseconds, smoke URLs filled in. */
export function deployPlanOf(d: DeployConfig, target: { context: string; namespace: string }, service: string, values: Record<string, unknown>): DeployPlan {
  const ms = (text: string) => parseDuration(text)!;
  return {
    target,
    timeoutMs: ms(d.timeout),
    whenBusy: d.whenBusy,
    busyTimeoutMs: ms(d.busyTimeout),
    smoke: d.smoke.map((c) =>
      c.type === 'rollout'
        ? c
        : c.type === 'helm-test'
          ? { type: c.type, timeoutMs: ms(c.timeout) }
          : { type: c.type, url: c.url.replaceAll('{service}', service).replaceAll('{namespace}', target.namespace), expectStatus: c.expectStatus, timeoutMs: ms(c.timeout) },
    ),
    values,
  };
}

export function canaryPlanOf(c: CanaryConfig): CanaryPlan {
  const ms = (text: string) => parseDuration(text)!;
  return {
    traffic: c.traffic,
    prometheus: c.prometheus,
    queries: Object.entries(c.queries).map(([name, query]) => ({ name, query })),
    judge: c.judge as JudgeConfig,
    steps: c.steps.map((s) =>
      'setWeight' in s ? s : 'analysis' in s ? { analysis: { durationMs: ms(s.analysis.duration), intervalMs: ms(s.analysis.interval) } } : { pause: s.pause.duration ? { durationMs: ms(s.pause.duration) } : {} },
    ),
    decisionTimeoutMs: ms(c.decisionTimeout),
  };
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

/** Checks the request against the schema and the configuration; returns the plan the workflow runs. */
export function planRelease(cfg: SlipwayConfig, raw: unknown): ReleaseInput {
  const r = startRequestSchema.safeParse(raw);
  if (!r.success) throw new UsageError(`invalid release request:\n${formatIssues(r.error)}`);
  const req = r.data;
  const svc = cfg.services[req.service];
  if (!svc) throw new UsageError(`service: unknown service "${req.service}" (configured: ${Object.keys(cfg.services).join(', ')})`);
  const order = cfg.pipeline ?? Object.keys(cfg.environments);
  const repository = svc.repository ?? req.service;
  const environments: EnvironmentPlan[] = order.map((name) => {
    const env = cfg.environments[name];
    const reg = cfg.registries[env.registry];
    const a = env.approval;
    return {
      name,
      registry:
        reg.type === 'oci'
          ? { name: env.registry, type: 'oci', host: reg.url, insecure: reg.insecure }
          : { name: env.registry, type: 'acr', host: reg.loginServer, insecure: false, acr: { subscriptionId: reg.subscriptionId, resourceGroup: reg.resourceGroup, registryName: reg.registryName } },
      repository: `${env.imagePrefix}${repository}`,
      approval: a
        ? {
            // Identities are compared and stored in one normal form (trimmed, lower-case).
            users: a.approvers.filter((p) => !p.startsWith('group:')).map((p) => normaliseIdentity(p.replace(/^user:/, ''))),
            groups: a.approvers.filter((p) => p.startsWith('group:')).map((p) => p.slice(6)),
            groupMembers: Object.fromEntries(a.approvers.filter((p) => p.startsWith('group:')).map((p) => [p.slice(6), (cfg.groups[p.slice(6)] ?? []).map(normaliseIdentity)])),
            minApprovals: a.minApprovals,
            requesterCannotApprove: a.requesterCannotApprove,
            timeoutMs: parseDuration(a.timeout)!,
            onTimeout: a.onTimeout,
          }
        : undefined,
      scan: env.scan ? scanPlanOf(env.scan) : undefined,
      canary: env.canary && env.kubeContext && svc.chart ? canaryPlanOf(env.canary) : undefined,
      deploy: env.kubeContext && env.namespace && svc.chart
        ? { ...deployPlanOf(env.deploy, { context: env.kubeContext, namespace: env.namespace }, req.service, { ...svc.chart.values, ...(svc.chart.environments[name] ?? {}) }), ...(svc.chart.imageValues ? { imageValues: svc.chart.imageValues } : {}) }
        : undefined,
    };
  });
  const input: ReleaseInput = {
    service: req.service,
    version: req.version,
    gitSha: req.gitSha,
    requester: normaliseIdentity(req.requester),
    source: svc.source,
    ...(svc.chart && environments.some((e) => e.deploy) ? { chart: { path: svc.chart.path, repository: svc.chart.repository ?? `charts/${repository}` } } : {}),
    environments,
    ...(req.image ? { image: req.image } : { build: { context: svc.build.context, dockerfile: svc.build.dockerfile, args: svc.build.args } }),
  };
  const checked = releaseInputSchema.safeParse(input);
  if (!checked.success) throw new UsageError(`invalid release plan:\n${formatIssues(checked.error)}`);
  return checked.data;
}
