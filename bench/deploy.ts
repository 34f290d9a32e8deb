/**
 * Kubernetes benchmarks on the local kwok clusters:
 *  - deploy:   Slipway's deploy stage (lock → capture revision → chart pulled by digest → helm upgrade --wait →
 *              rollout check → unlock) vs a plain `helm upgrade --install --wait` of the same chart, alternating
 *  - clusters: cluster start-up, cold (created) and cached (an existing cluster restarted), and reuse
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createChartActivities, createDeployActivities } from '../activities';
import { HelmDeployer, helmOptionsFromEnv } from '../activities/helm/helm';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { EnvCredentialStore, registryEnvKey } from '../activities/registry/credentials';
import { pullChart } from '../activities/registry/artifact';
import { OciRegistryClient } from '../activities/registry/oci-client';
import { ensureRegistry } from '../client/stack';
import { deleteClusters, ensureClusters, stopClusters } from '../client/stack/kubernetes';

const run = promisify(execFile);
const print = (line: string) => process.stdout.write(`${line}\n`);
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const show = (xs: number[]) => {
  const { min, median, max } = stats(xs);
  return `median ${median.toFixed(0)} ms (min ${min.toFixed(0)}, max ${max.toFixed(0)})`;
};

export async function deployBench(rounds: number, root: string): Promise<void> {
  const reg = await ensureRegistry('registry', 5000);
  const clusters = await ensureClusters();
  process.env.KUBECONFIG = clusters.kubeconfig;
  const key = registryEnvKey('dev');
  const credentials = new EnvCredentialStore({ [`${key}_USERNAME`]: reg.username, [`${key}_PASSWORD`]: reg.password }, '/nonexistent');
  const deployer = new HelmDeployer(helmOptionsFromEnv());
  const registry = { name: 'dev', type: 'oci' as const, host: reg.url, insecure: true };
  const version = `v0.0.${Date.now() % 100000}-bench`;
  const chart = await createChartActivities({ deployer, credentials, workspace: root }).packageChart({
    service: 'delivery',
    version,
    chartPath: 'services/delivery/chart',
    registry,
    repository: 'charts/delivery',
  });
  const acts = createDeployActivities({ deployer, cluster: new KubeCluster(), credentials, pollMs: 200 });
  const target = { context: clusters.contexts.qa, namespace: `bench-stage-${Date.now() % 100000}` };
  const plainNs = `bench-plain-${Date.now() % 100000}`;
  const image = { repository: `${reg.url}/delivery`, digest: `sha256:${'b'.repeat(64)}` };

  // Plain Helm gets the very same chart file and values, without slipway's steps around it.
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-'));
  const chartFile = join(dir, 'chart.tgz');
  writeFileSync(chartFile, await pullChart(new OciRegistryClient({ host: reg.url, name: 'dev', insecure: true }, credentials), chart.repository, chart.digest));
  const helm = helmOptionsFromEnv().binary;

  const slipwayMs: number[] = [];
  const plainMs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // Each round changes a value, so both upgrades roll out new pods.
    const lock = { service: 'delivery', environment: 'qa', target, holder: `bench-${i}`, whenBusy: 'refuse' as const, note: 'bench' };
    let t = performance.now();
    await acts.acquireDeployLock(lock);
    await acts.inspectDeploy({ service: 'delivery', target });
    await acts.deployChart({
      releaseId: `bench-${i}`,
      runId: 'bench',
      service: 'delivery',
      version,
      environment: 'qa',
      target,
      chart: { registry, repository: chart.repository, digest: chart.digest },
      image,
      values: { env: { ROUND: `s${i}` } },
      timeoutMs: 120_000,
      owner: 'bench',
      changeCause: 'bench',
    });
    await acts.releaseDeployLock(lock);
    slipwayMs.push(performance.now() - t);

    const values = join(dir, 'values.json');
    writeFileSync(values, JSON.stringify({ image, env: { ROUND: `p${i}` } }));
    t = performance.now();
    await run(helm, ['upgrade', 'delivery', chartFile, '--install', '--kube-context', target.context, '--namespace', plainNs, '--create-namespace', '--values', values, '--wait', '--timeout', '120s'], {
      env: process.env,
    });
    plainMs.push(performance.now() - t);
  }
  print(`deploy stage (${rounds} rounds, ${clusters.contexts.qa}, 2 replicas, alternating):`);
  print(`  slipway deploy stage:          ${show(slipwayMs)}`);
  print(`  plain helm upgrade --wait:     ${show(plainMs)}`);
  print(`  ratio of medians (slipway / helm): ${(stats(slipwayMs).median / stats(plainMs).median).toFixed(2)}`);
}

export async function clusterBench(rounds: number): Promise<void> {
  const envs = ['bench'];
  const cold: number[] = [];
  const cached: number[] = [];
  const reused: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await deleteClusters(envs);
    let t = performance.now();
    const c = await ensureClusters(envs);
    if (c.actions.bench !== 'created') throw new Error(`expected a new cluster, got ${c.actions.bench}`);
    cold.push(performance.now() - t);
    t = performance.now();
    await ensureClusters(envs);
    reused.push(performance.now() - t);
    await stopClusters(envs);
    t = performance.now();
    const s = await ensureClusters(envs);
    if (s.actions.bench !== 'started') throw new Error(`expected a restarted cluster, got ${s.actions.bench}`);
    cached.push(performance.now() - t);
  }
  await deleteClusters(envs);
  print(`local cluster start-up (${rounds} rounds; one cluster, 2 nodes; binaries already built):`);
  print(`  cold (kwokctl create + nodes):  ${show(cold)}`);
  print(`  cached (existing, restarted):   ${show(cached)}`);
  print(`  already running (reused):       ${show(reused)}`);
}
