/** Parses slipway.yaml's text and turns a start request into the workflow's release plan, refusing bad input first. */
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
} from './config';
import { asJudgeConfig } from './canary';
import { normaliseIdentity } from './decision-token';
import { UsageError } from './errors';
import { releaseInputSchema, type CanaryPlan, type DeployPlan, type EnvironmentPlan, type GitopsPlan, type ReleaseInput } from './types';
import { parsePrincipal } from './identifiers';
import { smokeCheckOf } from './smoke';

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

/** How long the tokens this configuration's edges sign stay valid (identity.tokenTtl; the workers accept no longer). */
export const tokenTtlSecondsOf = (cfg: SlipwayConfig): number => Math.floor(parseDuration(cfg.identity?.tokenTtl ?? '5m')! / 1000);

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
    smoke: d.smoke.map((c) => smokeCheckOf(c, service, target.namespace)),
    values,
  };
}

export function canaryPlanOf(c: CanaryConfig): CanaryPlan {
  const ms = (text: string) => parseDuration(text)!;
  return {
    traffic: c.traffic,
    prometheus: c.prometheus,
    queries: Object.entries(c.queries).map(([name, query]) => ({ name, query })),
    judge: asJudgeConfig(c.judge),
    steps: c.steps.map((s) =>
      'setWeight' in s ? s : 'analysis' in s ? { analysis: { durationMs: ms(s.analysis.duration), intervalMs: ms(s.analysis.interval) } } : { pause: s.pause.duration ? { durationMs: ms(s.pause.duration) } : {} },
    ),
    decisionTimeoutMs: ms(c.decisionTimeout),
  };
}

/** A gitops environment's plan (the config's rules guarantee kubeContext, namespace and flux); else undefined. */
function gitopsPlanOf(env: SlipwayConfig['environments'][string], service: string): GitopsPlan | undefined {
  const d = env.delivery;
  if (d?.type !== 'gitops' || !env.kubeContext || !env.namespace || !d.flux) return undefined;
  const ms = (text: string) => parseDuration(text)!;
  const target = { context: env.kubeContext, namespace: env.namespace };
  return {
    delivery: d,
    flux: d.flux,
    target,
    timeoutMs: ms(env.deploy.timeout),
    smoke: env.deploy.smoke.map((c) => smokeCheckOf(c, service, target.namespace)),
    mergeTimeoutMs: ms(env.approval?.timeout ?? '72h'),
  };
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
    const principals = (a?.approvers ?? []).map(parsePrincipal);
    const gitops = gitopsPlanOf(env, req.service);
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
            users: principals.filter((p) => p.kind === 'user').map((p) => normaliseIdentity(p.name)),
            groups: principals.filter((p) => p.kind === 'group').map((p) => p.name),
            groupMembers: Object.fromEntries(principals.filter((p) => p.kind === 'group').map((p) => [p.name, (cfg.groups[p.name] ?? []).map(normaliseIdentity)])),
            minApprovals: a.minApprovals,
            requesterCannotApprove: a.requesterCannotApprove,
            timeoutMs: parseDuration(a.timeout)!,
            onTimeout: a.onTimeout,
          }
        : undefined,
      scan: env.scan ? scanPlanOf(env.scan) : undefined,
      // Under gitops the canary is Slipway's copy of the Deployment Flux applied; promotion is the Git change.
      canary: env.canary && env.kubeContext && (svc.chart || gitops) ? canaryPlanOf(env.canary) : undefined,
      ...(gitops ? { gitops } : {}),
      deploy: env.kubeContext && env.namespace && svc.chart && !gitops
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
