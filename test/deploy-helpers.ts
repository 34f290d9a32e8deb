/** Helpers for releases that deploy to the local kwok clusters: a config, Helm history and the Kubernetes API. */
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DockerImageBuilder } from '../activities/docker/builder';
import { EnvCredentialStore } from '../activities/registry/credentials';
import { ROOT } from './helpers';
import { readdirSync, readFileSync } from 'node:fs';
import { HelmDeployer, helmOptionsFromEnv } from '../activities/helm/helm';
import { k8s } from '../activities/kubernetes/client';
import { KubeCluster } from '../activities/kubernetes/cluster';
import type { HelmRevision } from '../activities/ports';
import { testStack } from './setup/stack-info';

export const uniqueNamespace = (prefix: string): string => `${prefix}-${randomBytes(3).toString('hex')}`;

export interface DeployConfigOptions {
  ns: string;
  qaDeploy?: string;
  prodDeploy?: string;
  prodValues?: string;
  qaValues?: string;
  approval?: string;
  qaContext?: string;
  /** YAML for prod's `canary:` section (indented by the caller's flow style, e.g. "{ … }"). */
  prodCanary?: string;
  qaCanary?: string;
}

/** Two environments on two clusters: QA (no approval) and prod (approval, `prod/` images). */
export function deployConfigText(o: DeployConfigOptions): string {
  const ctx = testStack().contexts;
  return `
registries:
  dev: { type: oci, url: "${testStack().registry.url}", insecure: true }
environments:
  qa:
    registry: dev
    kubeContext: ${o.qaContext ?? ctx.qa}
    namespace: ${o.ns}-qa
    deploy: ${o.qaDeploy ?? '{ timeout: 60s, smoke: [ { type: rollout }, { type: helm-test, timeout: 60s } ] }'}
${o.qaCanary ? `    canary: ${o.qaCanary}
` : ''}  prod:
    registry: dev
    imagePrefix: prod/
    kubeContext: ${ctx.prod}
    namespace: ${o.ns}
    approval: ${o.approval ?? '{ approvers: [alice] }'}
    deploy: ${o.prodDeploy ?? '{ timeout: 60s, smoke: [ { type: rollout } ] }'}
${o.prodCanary ? `    canary: ${o.prodCanary}
` : ''}identity: { issuers: [ { name: ui } ], local: true }
services:
  delivery:
    build: { context: services/delivery, args: { VERSION: test } }
    chart:
      path: services/delivery/chart
      values: { replicaCount: 2 }
      environments: { qa: ${o.qaValues ?? '{}'}, prod: ${o.prodValues ?? '{}'} }
`;
}

export function kube(): { helm: HelmDeployer; cluster: KubeCluster } {
  process.env.KUBECONFIG = testStack().kubeconfig;
  return { helm: new HelmDeployer(helmOptionsFromEnv()), cluster: new KubeCluster() };
}

export async function helmHistory(env: 'qa' | 'prod', namespace: string, release = 'delivery'): Promise<HelmRevision[]> {
  return kube().helm.history({ context: testStack().contexts[env], namespace }, release);
}

/** Labels a simulated node (kwok's node-000000) of a local cluster. */
export async function labelNode(env: 'qa' | 'prod', labels: Record<string, string>): Promise<void> {
  const core = KubeCluster.forKubeconfig(testStack().kubeconfig).api(testStack().contexts[env], k8s.CoreV1Api);
  await core.patchNode({ name: 'node-000000', body: { metadata: { labels } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
}

/** A canary section: the sample service's error ratio and mean latency, judged as Kayenta would. */
export function canaryText(o: { prometheus: string; steps: string; decisionTimeout?: string; traffic?: string }): string {
  return `{ traffic: ${o.traffic ?? '{ type: replicas }'}, prometheus: { url: "${o.prometheus}", stepSeconds: 1 },
      queries: {
        errors: '(sum(rate(http_requests_total{code=~"5..",track="$track"}[5s])) or vector(0)) / sum(rate(http_requests_total{track="$track"}[5s]))',
        latency: 'sum(rate(http_request_duration_seconds_sum{track="$track"}[5s])) / sum(rate(http_request_duration_seconds_count{track="$track"}[5s]))' },
      judge: { metrics: [
        { name: errors, groups: [errors], direction: increase, critical: true, nanStrategy: replace },
        { name: latency, groups: [latency], direction: increase, effectSize: { allowedIncrease: 1.1 } } ],
        groupWeights: { errors: 80, latency: 20 } },
      steps: ${o.steps}, decisionTimeout: ${o.decisionTimeout ?? '1h'} }`;
}

/** The pids of the helm processes working in a namespace, read from /proc (not through the code under test). */
export function helmProcessesIn(namespace: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a === 'helm' || a.endsWith('/helm')) && argv.includes(namespace)) pids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return pids;
}


/** The sample service's image, built from its Dockerfile with VERSION and pushed to the stack's registry as `tag`; returns `repo@digest`. */
export async function pushSampleImage(tag: string, version: string, args: Record<string, string> = {}): Promise<string> {
  const stack = testStack();
  const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
  const builder = new DockerImageBuilder(new Docker({ socketPath: stack.docker.replace(/^unix:\/\//, '') }), credentials);
  await builder.build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: { VERSION: version, ...args }, labels: {} }, () => undefined);
  const { digest } = await builder.push(tag, { host: stack.registry.url, name: 'dev', type: 'oci', insecure: true }, () => undefined);
  return `${tag.replace(/:[^:/]+$/, '')}@${digest}`;
}
