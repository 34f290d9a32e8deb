/**
 * What the chaos run needs to kill workers inside canary analysis (bench/chaos.ts): a canary plan for production,
 * measured traffic for its two tracks, and the checks that the cluster is left as the outcome says.
 *
 * kwok's pods run nothing, so — as in test/integration/canary.test.ts — the measured traffic comes from containers of
 * the very images the releases built (baseline: the stable release's; canary: the new one's, with ERROR_RATE when the
 * canary must fail), run by the Docker engine on the host network and scraped by a Prometheus of the chaos run's own
 * with `track` labels, under local load. Traffic moves by replica ratio (`traffic: replicas`) on the kwok cluster.
 */
import type Docker from 'dockerode';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { k8s } from '../activities/kubernetes/client';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { findBinary, portOpen, waitFor } from '../client/stack/process';
import type { ReleaseStatus } from '../model/types';
import { dockerFromEnv } from '../workers/builder';

/** Clear of the tests' Prometheus ports (19090–19096), the routers' 19280–19292 and canary.test's tracks (18511/18512). */
export const CANARY_PROM_PORT = 19097;
export const CANARY_TRACK_PORTS = { baseline: 18531, canary: 18532 } as const;
export type Track = keyof typeof CANARY_TRACK_PORTS;

/** Whether the canary's metrics are as good as the baseline's (it must be promoted) or worse (rolled back). */
export type CanaryMetrics = 'healthy' | 'failing';
/** A 30 % error rate: canary.test's failing canary, rolled back at its first interval with enough points. */
const FAILING_ENV = { ERROR_RATE: '0.3' };

/** One weight (the only one a single stable replica can express by ratio) and two 3 s intervals, as canary.test. */
export const CANARY_STEPS = '[ { setWeight: 50 }, { analysis: { duration: 6s, interval: 3s } } ]';
/** How many weights the plan sets (each set once: more is a step done twice). */
export const CANARY_WEIGHT_STEPS = (CANARY_STEPS.match(/setWeight/g) ?? []).length;

/** Production's `canary:` section, in flow style (errors are critical; latency weighs 20 %). */
export function canaryConfigText(prometheusUrl: string): string {
  return `{ traffic: { type: replicas }, prometheus: { url: "${prometheusUrl}", stepSeconds: 1 },
      queries: {
        errors: '(sum(rate(http_requests_total{code=~"5..",track="$track"}[5s])) or vector(0)) / sum(rate(http_requests_total{track="$track"}[5s]))',
        latency: 'sum(rate(http_request_duration_seconds_sum{track="$track"}[5s])) / sum(rate(http_request_duration_seconds_count{track="$track"}[5s]))' },
      judge: { metrics: [
        { name: errors, groups: [errors], direction: increase, critical: true, nanStrategy: replace },
        { name: latency, groups: [latency], direction: increase, effectSize: { allowedIncrease: 1.1 } } ],
        groupWeights: { errors: 80, latency: 20 } },
      steps: ${CANARY_STEPS}, decisionTimeout: 20s }`;
}

/** The tag a release's build left in the Docker engine. */
export const localImage = (registryUrl: string, version: string): string => `${registryUrl}/delivery:${version}`;

/** The chaos run's Prometheus, the two track containers and the load on them; `stop` removes them all. */
export class CanaryTracks {
  private readonly containers: Partial<Record<Track, Docker.Container>> = {};
  private loading = true;
  private readonly load: Promise<void>;
  private constructor(
    private readonly docker: Docker,
    private readonly prometheus: ChildProcess,
  ) {
    this.load = this.generateLoad();
  }

  /** ~20 requests/s on each track (loopback only) until `stop`; a track not running yet just refuses them. */
  private async generateLoad(): Promise<void> {
    while (this.loading) {
      await Promise.all(Object.values(CANARY_TRACK_PORTS).flatMap((p) => Array.from({ length: 4 }, () => fetch(`http://127.0.0.1:${p}/api/deliveries`).then((r) => r.text()).catch(() => undefined))));
      await sleep(200);
    }
  }

  readonly url = `http://127.0.0.1:${CANARY_PROM_PORT}`;

  static async start(dockerHost: string, workDir: string): Promise<CanaryTracks> {
    const bin = findBinary('prometheus');
    if (!bin) throw new Error('prometheus is not installed: the canary kill points need one to measure the tracks');
    if (await portOpen(CANARY_PROM_PORT)) throw new Error(`port ${CANARY_PROM_PORT} is taken: another chaos run's Prometheus?`);
    const dir = join(workDir, 'prometheus');
    mkdirSync(dir, { recursive: true });
    const scrape = Object.entries(CANARY_TRACK_PORTS).map(([track, port]) => `      - targets: ["127.0.0.1:${port}"]\n        labels: { track: ${track} }`).join('\n');
    writeFileSync(join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: delivery\n    static_configs:\n${scrape}\n`);
    const prometheus = spawn(bin, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${CANARY_PROM_PORT}`], { stdio: 'ignore' });
    try {
      await waitFor('prometheus', () => portOpen(CANARY_PROM_PORT), 30_000);
    } catch (err) {
      prometheus.kill('SIGKILL');
      throw err;
    }
    return new CanaryTracks(dockerFromEnv({ DOCKER_HOST: dockerHost }), prometheus);
  }

  /** Runs `image` as the track's process (the port Prometheus scrapes), replacing what ran there. */
  async run(track: Track, image: string, metrics: CanaryMetrics = 'healthy'): Promise<void> {
    await this.containers[track]?.remove({ force: true }).catch(() => undefined);
    const env = { LISTEN: `127.0.0.1:${CANARY_TRACK_PORTS[track]}`, VERSION: track, LATENCY_MS: '5', ...(metrics === 'failing' ? FAILING_ENV : {}) };
    const c = await this.docker.createContainer({
      Image: image,
      // A 5 ms handler: the sample's own work takes microseconds, which scheduler noise on 2 cores would dominate.
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      HostConfig: { NetworkMode: 'host' },
      Labels: { 'slipway.test': 'chaos-canary' },
    });
    await c.start();
    this.containers[track] = c;
    await waitFor(`${track} container`, () => portOpen(CANARY_TRACK_PORTS[track]), 10_000);
    // A few scrapes of the new process before anyone measures it.
    await sleep(3000);
  }

  async stop(): Promise<void> {
    this.loading = false;
    await this.load;
    for (const c of Object.values(this.containers)) await c?.remove({ force: true }).catch(() => undefined);
    this.prometheus.kill('SIGKILL');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CanaryExpectation {
  metrics: CanaryMetrics;
  kubeconfig: string;
  context: string;
  namespace: string;
  /** The stable release's image digest before the canary. */
  baselineDigest: string;
  /** The stable Deployment's replicas before the canary (a canary must not change them). */
  stableReplicas: number;
  /** Helm upgrades of production this release made (revisions described as its own). */
  prodUpgrades: number;
}

/**
 * How the release and the cluster differ from what the canary's metrics call for: a healthy canary promoted (the
 * stable Deployment runs the new digest), a failing one rolled back (the stable one untouched, Helm unchanged);
 * either way no canary Deployment or Service left, and the stable Deployment's replicas as they were.
 */
export async function canaryOutcomeProblems(final: ReleaseStatus, e: CanaryExpectation): Promise<string[]> {
  const problems: string[] = [];
  const promote = e.metrics === 'healthy';
  const want = promote ? { phase: 'succeeded', canary: 'promoted' } : { phase: 'failed', canary: 'rolled-back' };
  const got = { phase: final.phase, canary: final.canary?.state };
  if (got.phase !== want.phase || got.canary !== want.canary) problems.push(`${e.metrics} canary: release ${got.phase} with canary ${got.canary ?? 'absent'}, expected ${want.phase} with canary ${want.canary}${final.error ? ` (${final.error})` : ''}`);
  if (!promote && final.error && !/canary failed analysis/.test(final.error)) problems.push(`failing canary ended for another reason: ${final.error}`);
  if (e.prodUpgrades !== (promote ? 1 : 0)) problems.push(`production has ${e.prodUpgrades} Helm upgrade(s) by this release, expected ${promote ? 1 : 0}`);

  const cluster = KubeCluster.forKubeconfig(e.kubeconfig);
  const apps = cluster.api(e.context, k8s.AppsV1Api);
  const core = cluster.api(e.context, k8s.CoreV1Api);
  const canaryDeployments = (await apps.listNamespacedDeployment({ namespace: e.namespace, labelSelector: 'track=canary' })).items;
  const canaryServices = (await core.listNamespacedService({ namespace: e.namespace, labelSelector: 'track=canary' })).items;
  for (const d of canaryDeployments) problems.push(`canary Deployment ${d.metadata?.name} left (${d.spec?.replicas} replica(s))`);
  for (const s of canaryServices) problems.push(`canary Service ${s.metadata?.name} left`);
  const stable = (await apps.listNamespacedDeployment({ namespace: e.namespace, labelSelector: 'app.kubernetes.io/instance=delivery' })).items.filter((d) => d.metadata?.labels?.track !== 'canary');
  if (stable.length !== 1) problems.push(`${stable.length} stable Deployments of delivery, expected 1`);
  for (const d of stable) {
    const image = d.spec?.template.spec?.containers[0]?.image ?? '';
    const digest = promote ? final.digest : e.baselineDigest;
    if (!image.endsWith(`@${digest}`)) problems.push(`stable Deployment runs ${image}, expected the ${promote ? 'promoted' : 'baseline'} digest ${digest}`);
    if (d.spec?.replicas !== e.stableReplicas) problems.push(`stable Deployment has ${d.spec?.replicas} replicas, had ${e.stableReplicas}`);
  }
  return problems;
}

/** The stable Deployment's replicas (undefined when there is none). */
export async function stableReplicas(kubeconfig: string, context: string, namespace: string): Promise<number | undefined> {
  const apps = KubeCluster.forKubeconfig(kubeconfig).api(context, k8s.AppsV1Api);
  const items = (await apps.listNamespacedDeployment({ namespace, labelSelector: 'app.kubernetes.io/instance=delivery' })).items.filter((d) => d.metadata?.labels?.track !== 'canary');
  return items[0]?.spec?.replicas;
}
