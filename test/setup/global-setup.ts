/**
 * The integration and e2e tiers' globalSetup: brings up the real local stack once for the run (the same code as
 * `slipway stack up`), plus a second registry for cross-registry promotion, and what the workflow tier needs
 * (Temporal and the workflow bundle, see workflow-tier.ts).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDocker, ensureRegistry, ensureTemporal } from '../../client/stack';
import { ensureClusters, type ClustersEndpoint } from '../../client/stack/kubernetes';
import { dockerFromEnv } from '../../workers/builder';
import { ensureBaseImage } from '../../client/stack/base-image';
import { ensurePrometheus } from '../../client/stack/prometheus';
import { STACK_FILE, type TestStack } from './stack-info';
import { prepareWorkflowTier } from './workflow-tier';

export default async function globalSetup(): Promise<void> {
  process.env.PATH = `${process.env.HOME}/.cache/slipway/bin:${process.env.PATH}`;
  const [, docker, registry, registryB, clusters] = await Promise.all([
    ensureTemporal(),
    ensureDocker(),
    ensureRegistry('registry', 5000),
    ensureRegistry('registry-b', 5001),
    ensureClusters(),
  ]);
  await ensureBaseImage(dockerFromEnv({ DOCKER_HOST: docker.host }));
  await removeOldTestNamespaces(clusters);
  // The stack's Prometheus (as `stack up` starts it): pods on the real nodes and the routers, found by kubernetes_sd.
  const prometheus = await ensurePrometheus({ kubeconfig: clusters.kubeconfig, contexts: clusters.contexts });
  // After the probes above: bundling blocks the event loop (Temporal is up by now, so its second check is quick).
  const { temporal, bundlePath } = await prepareWorkflowTier();
  // A Trivy database of our own advisories (the real one cannot be downloaded here), written by trivy-db's code.
  const trivyCache = join(__dirname, '..', '..', '.slipway', 'trivy-cache');
  execFileSync(join(process.env.HOME!, '.cache', 'slipway', 'bin', 'trivy-fixture-db'), ['-advisories', join(__dirname, '..', 'fixtures', 'trivy', 'advisories.json'), '-cache-dir', trivyCache], { stdio: 'ignore' });
  const info: TestStack = { temporal, docker: docker.host, registry, registryB, bundlePath, trivyCache, kubeconfig: clusters.kubeconfig, contexts: clusters.contexts, prometheus: { url: prometheus.url } };
  writeFileSync(STACK_FILE, JSON.stringify(info), { mode: 0o600 });
}

/**
 * The local clusters outlive a run, and so would every namespace the tests create (uniqueNamespace: `<prefix>-<6 hex>`,
 * `-qa` for QA): their pods pile up on kwok's nodes until a node is full (110 pods) and a later run's deploys cannot
 * be scheduled — CI saw it. Earlier runs' test namespaces are deleted here, without waiting (the namespace controller
 * removes their pods while this run starts); other namespaces (the demo's, kube-*) are left alone.
 */
async function removeOldTestNamespaces(clusters: ClustersEndpoint): Promise<void> {
  const { KubeCluster } = await import('../../activities/kubernetes/cluster');
  const { k8s } = await import('../../activities/kubernetes/client');
  const cluster = KubeCluster.forKubeconfig(clusters.kubeconfig);
  const startedAt = Date.now();
  for (const context of Object.values(clusters.contexts)) {
    const core = cluster.api(context, k8s.CoreV1Api);
    const { items } = await core.listNamespace();
    const old = items.filter((n) => {
      const name = n.metadata?.name ?? '';
      const created = n.metadata?.creationTimestamp ? new Date(n.metadata.creationTimestamp as unknown as string).getTime() : startedAt;
      return /^[a-z][a-z0-9-]*-[0-9a-f]{6}(-qa)?$/.test(name) && created < startedAt - 60_000 && !n.metadata?.deletionTimestamp;
    });
    await Promise.all(old.map((n) => core.deleteNamespace({ name: n.metadata!.name! }).catch(() => undefined)));
  }
}

