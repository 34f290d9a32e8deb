/** The orchestrator worker: the release workflow, promotion by manifest copy, registry scans, Helm deploys. */
import { DefaultAzureCredential } from '@azure/identity';
import { ContainerRegistryManagementClient } from '@azure/arm-containerregistry';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createDeployActivities, createGitopsActivities, createRegistryActivities, createScanActivities, FluxController, releaseIsRunning } from '../activities';
import { HelmDeployer, helmOptionsFromEnv } from '../activities/helm/helm';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { KubeCanary } from '../activities/kubernetes/canary';
import { createCanaryActivities } from '../activities/canary';
import { metricProviders, metricSourcesOf } from '../activities/metrics/factory';
import { TrivyScanner, trivyOptionsFromEnv } from '../activities/scanner/trivy';
import { EnvCredentialStore, type CredentialStore } from '../activities/registry/credentials';
import { registryFactory } from '../activities/registry/factory';
import { loadConfig } from '../host/config';
import { ORCHESTRATOR_QUEUE } from '../model/queues';
import type { TemporalSettings } from './connection';
import { configFromFile, createPlanActivities } from './plan';

export interface OrchestratorOptions {
  connection: NativeConnection;
  namespace: string;
  credentials?: CredentialStore;
  /** Pre-built workflow bundle (tests bundle once); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  taskQueue?: string;
  /** slipway.yaml: where each release's plan and trusted keys come from (default $SLIPWAY_CONFIG, else ./slipway.yaml). */
  configFile?: string;
  /** The checkout charts are checked in (the builders' workspace); default: beside the configuration file. */
  repoRoot?: string;
}

export async function createOrchestratorWorker(opts: OrchestratorOptions): Promise<Worker> {
  const credentials = opts.credentials ?? new EnvCredentialStore();
  const registries = registryFactory({
    credentials,
    armClient: (ref) =>
      new ContainerRegistryManagementClient(new DefaultAzureCredential(), ref.acr!.subscriptionId, {
        // Sovereign clouds, or a local endpoint in tests.
        ...(process.env.SLIPWAY_ARM_ENDPOINT ? { endpoint: process.env.SLIPWAY_ARM_ENDPOINT } : {}),
      }),
  });
  const cluster = new KubeCluster();
  const configFile = opts.configFile ?? process.env.SLIPWAY_CONFIG ?? 'slipway.yaml';
  // Which metrics URLs are Azure Monitor (and with which credentials) comes from this worker's own slipway.yaml, never
  // from the workflow: an input cannot point the worker's Azure token at another URL. Unreadable config: plain Prometheus.
  const metricSources = () => {
    try {
      return metricSourcesOf(loadConfig(configFile));
    } catch {
      return [];
    }
  };
  // Where a gitops token may go is this worker's slipway.yaml's say too (an unreadable one allows none).
  const gitopsDeliveries = () => {
    try {
      return Object.values(loadConfig(configFile).environments).flatMap((e) => (e.delivery?.type === 'gitops' ? [e.delivery] : []));
    } catch {
      return [];
    }
  };
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue ?? ORCHESTRATOR_QUEUE,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities: {
      ...createPlanActivities({ config: configFromFile(configFile, opts.repoRoot) }),
      ...createRegistryActivities({ registries }),
      ...createScanActivities({ scanner: new TrivyScanner(trivyOptionsFromEnv(), credentials) }),
      // Helm and the Kubernetes API read the kubeconfig from this worker's environment (KUBECONFIG).
      ...createDeployActivities({ deployer: new HelmDeployer(helmOptionsFromEnv()), cluster, credentials, holderActive: releaseIsRunning }),
      ...createCanaryActivities({ canaries: new KubeCanary(cluster), metrics: metricProviders(metricSources) }),
      // GitOps delivery: tokens from this worker's environment (forge.tokenEnv), Flux through the same kubeconfig.
      ...createGitopsActivities({ flux: new FluxController(cluster), configured: gitopsDeliveries }),
    },
  });
}

export async function connectWorker(settings: TemporalSettings): Promise<NativeConnection> {
  return NativeConnection.connect({ address: settings.address });
}
