/**
 * A worker with no-op activities, for measuring orchestration alone (run as its own process so its memory can be
 * read from /proc). Usage: node dist/bench/noop-worker.js <address> <namespace> <maxConcurrentWorkflowTasks>
 */
import { NativeConnection, Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import type { SlipwayActivities } from '../activities/contract';
import { configFromFile, createPlanActivities } from '../workers/plan';
import { BUILD_QUEUE, ORCHESTRATOR_QUEUE, hostQueue } from '../model/queues';

/** Activities that do nothing and report one fixed digest: orchestration alone (also the CLI tests' fakes). */
export const noopActivities = (digest = `sha256:${'e'.repeat(64)}`, hostId = 'bench'): SlipwayActivities => ({
  // The plan is real: read from the worker's slipway.yaml ($SLIPWAY_CONFIG).
  ...createPlanActivities({ config: configFromFile(process.env.SLIPWAY_CONFIG ?? 'slipway.yaml') }),
  async buildImage(i) {
    return { imageId: 'noop', tag: i.tag, hostQueue: hostQueue(hostId), host: hostId, steps: 0, durationMs: 0 };
  },
  async pushImage(i) {
    return { reference: `${i.tag}@${digest}`, digest };
  },
  async scanImage(i) {
    return { scanner: 'noop', image: i.image, scannedAt: new Date().toISOString(), counts: { UNKNOWN: 0, LOW: 0, MEDIUM: 0, HIGH: 0, CRITICAL: 0 }, findings: [] };
  },
  async copyImage(i) {
    return { source: i.source, target: i.target, digest, mediaType: 'noop', manifests: 1, blobsMounted: 0, blobsCopied: 0, blobsSkipped: 0, bytesCopied: 0, method: 'oci-copy' };
  },
  async packageChart(i) {
    return { reference: `${i.registry.host}/${i.repository}@${digest}`, repository: i.repository, digest, chart: i.service, version: i.version, size: 0 };
  },
  async inspectDeploy() {
    return { revision: 0 };
  },
  async deployChart(i) {
    return { release: i.service, revision: 1, resumed: false, image: `${i.image.repository}@${i.image.digest}`, replicas: 1, available: 1, durationMs: 0 };
  },
  async rollbackDeploy(i) {
    return { action: 'nothing-to-do', toRevision: i.toRevision, note: 'noop' };
  },
  async smokeTest(i) {
    return { check: i.check.type, detail: 'noop', durationMs: 0 };
  },
  async acquireDeployLock() {
    return { acquired: true, waitedMs: 0 };
  },
  async releaseDeployLock() {
    return { released: true };
  },
  async startCanary(i) {
    return { canary: `${i.service}-canary`, stableReplicas: 2 };
  },
  async setCanaryWeight(i) {
    return { weight: i.weight, canaryReplicas: 1 };
  },
  async measureCanary(i) {
    return { metrics: i.queries.map((q) => ({ name: q.name, baseline: [1, 1, 1], canary: [1, 1, 1] })) };
  },
  async removeCanary() {
    return { removed: true };
  },
});

async function main(): Promise<void> {
  const [address, namespace] = process.argv.slice(2);
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const connection = await NativeConnection.connect({ address });
  const common = { connection, namespace, activities: noopActivities() };
  const workers = await Promise.all([
    Worker.create({ ...common, taskQueue: ORCHESTRATOR_QUEUE, workflowsPath: require.resolve('../workflows'), maxCachedWorkflows: 1000 }),
    Worker.create({ ...common, taskQueue: BUILD_QUEUE }),
    Worker.create({ ...common, taskQueue: hostQueue('bench') }),
  ]);
  process.on('SIGTERM', () => workers.forEach((w) => w.shutdown()));
  process.stdout.write('ready\n');
  await Promise.all(workers.map((w) => w.run()));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
