/**
 * The builder worker, one per Docker host. It polls the shared build queue and its own host queue: a build may
 * land on any host, and the push that follows is routed to the queue of the host that holds the image.
 */
import Docker from 'dockerode';
import { hostname } from 'node:os';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createBuilderActivities, createChartActivities, createScanActivities } from '../activities';
import { HelmDeployer, helmOptionsFromEnv } from '../activities/helm/helm';
import { TrivyScanner, trivyOptionsFromEnv } from '../activities/scanner/trivy';
import { DockerImageBuilder } from '../activities/docker/builder';
import { EnvCredentialStore, type CredentialStore } from '../activities/registry/credentials';
import { BUILD_QUEUE, hostQueue } from '../model/queues';

export interface BuilderOptions {
  connection: NativeConnection;
  namespace: string;
  docker?: Docker;
  credentials?: CredentialStore;
  hostId?: string;
  /**
   * The checkout builds read (SLIPWAY_WORKSPACE, else the working directory). A release with a gitSha builds that
   * commit, exported from this checkout's git repository: the commit must have been fetched into it.
   */
  workspace?: string;
  /** Concurrent builds on this host; Docker builds are CPU- and disk-heavy. */
  maxConcurrentBuilds?: number;
}

export function dockerFromEnv(env: NodeJS.ProcessEnv = process.env): Docker {
  const host = env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return new Docker({ socketPath: host.slice('unix://'.length) });
  if (host?.startsWith('tcp://')) {
    const u = new URL(host.replace('tcp://', 'http://'));
    return new Docker({ host: u.hostname, port: Number(u.port || 2375) });
  }
  return new Docker({ socketPath: '/var/run/docker.sock' });
}

export async function createBuilderWorkers(opts: BuilderOptions): Promise<Worker[]> {
  const hostId = opts.hostId ?? process.env.SLIPWAY_BUILDER_ID ?? hostname();
  const credentials = opts.credentials ?? new EnvCredentialStore();
  const workspace = opts.workspace ?? process.env.SLIPWAY_WORKSPACE ?? process.cwd();
  const activities = {
    ...createBuilderActivities({ builder: new DockerImageBuilder(opts.docker ?? dockerFromEnv(), credentials), hostId, workspace }),
    ...createChartActivities({ deployer: new HelmDeployer(helmOptionsFromEnv()), credentials, workspace }),
    ...createScanActivities({ scanner: new TrivyScanner(trivyOptionsFromEnv(), credentials) }),
  };
  const common = { connection: opts.connection, namespace: opts.namespace, activities };
  return Promise.all([
    Worker.create({ ...common, taskQueue: BUILD_QUEUE, maxConcurrentActivityTaskExecutions: opts.maxConcurrentBuilds ?? 2 }),
    Worker.create({ ...common, taskQueue: hostQueue(hostId), maxConcurrentActivityTaskExecutions: 4 }),
  ]);
}
