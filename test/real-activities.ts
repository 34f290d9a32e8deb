/** The real activities, as a worker builds them, pointed at the test stack (Docker, registries, fixture Trivy DB). */
import { createCanaryActivities } from '../activities/canary';
import { KubeCanary } from '../activities/kubernetes/canary';
import { PrometheusProvider } from '../activities/metrics/prometheus';
import { createBuilderActivities, createChartActivities, createDeployActivities, createRegistryActivities, createScanActivities } from '../activities';
import { HelmDeployer, helmOptionsFromEnv } from '../activities/helm/helm';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { DockerImageBuilder } from '../activities/docker/builder';
import type { CredentialStore } from '../activities/registry/credentials';
import { registryFactory } from '../activities/registry/factory';
import { TrivyScanner, trivyOptionsFromEnv, type TrivyOptions } from '../activities/scanner/trivy';
import { dockerFromEnv } from '../workers/builder';
import { ROOT, type TestActivities } from './helpers';
import { testStack } from './setup/stack-info';

export function realActivities(
  credentials: CredentialStore,
  hostId: string,
  trivy: Partial<TrivyOptions> = {},
  deploy: { holderActive?: (holder: string) => Promise<boolean> } = {},
): TestActivities {
  const stack = testStack();
  // The local clusters' kubeconfig (test/setup started them); helm and client-node both read KUBECONFIG.
  process.env.KUBECONFIG = stack.kubeconfig;
  const deployer = new HelmDeployer(helmOptionsFromEnv());
  const cluster = new KubeCluster();
  const docker = dockerFromEnv({ DOCKER_HOST: stack.docker });
  const scanner = new TrivyScanner({ ...trivyOptionsFromEnv({ ...process.env, DOCKER_HOST: stack.docker }), cacheDir: stack.trivyCache, timeoutMs: 120_000, ...trivy }, credentials);
  return {
    ...createBuilderActivities({ builder: new DockerImageBuilder(docker, credentials), hostId, workspace: ROOT }),
    ...createRegistryActivities({ registries: registryFactory({ credentials }) }),
    ...createScanActivities({ scanner }),
    ...createChartActivities({ deployer, credentials, workspace: ROOT }),
    // A lock holder counts as alive unless a test says otherwise (tests run many releases side by side).
    ...createDeployActivities({ deployer, cluster, credentials, holderActive: deploy.holderActive, pollMs: 500 }),
    ...createCanaryActivities({ canaries: new KubeCanary(cluster), metrics: (url) => new PrometheusProvider(url) }),
  };
}
