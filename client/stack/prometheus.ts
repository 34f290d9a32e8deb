/**
 * The stack's own Prometheus: 3.16, built from its Go module by tools/prometheus/build.sh because Debian's package
 * lacks kubernetes_sd_configs. It discovers the pods of each local cluster through that cluster's API server and
 * scrapes those on the cluster's real node that ask for it (the sample chart's `prometheus.io/*` annotations), and
 * it scrapes each cluster's Traefik. Canaries judge these series; queries tell clusters, releases and tracks apart
 * by the labels `cluster`, `namespace`, `pod` and `track` (baseline|canary).
 * Listens on 127.0.0.1 only. Idempotent like the other stack helpers: a running Prometheus with the same
 * configuration and binary is reused, one started with another is restarted (its data directory stays).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { contextName, kubeconfigPath, LOCAL_CLUSTERS } from './kubernetes';
import { nodeLayout } from './node';
import { daemonPid, portOpen, slipwayHome, startDaemon, stateDir, stopDaemon, waitFor } from './process';
import { routerPorts, singleContextKubeconfig } from './router';

/** The pinned Prometheus (tools/prometheus/build.sh builds this version). */
export const PROMETHEUS_VERSION = '3.16.0';
/** Clear of the tests' own Prometheus ports (19090/19091, 19095/19096) and the routers' 19280-19292. */
export const STACK_PROMETHEUS_PORT = 19099;
/** Canaries judge intervals of a few seconds: a 1 s scrape gives each interval several samples per series. */
const SCRAPE_INTERVAL = '1s';
/** The stack's Prometheus serves live canaries, not history. */
const RETENTION = '6h';
const DAEMON = 'prometheus';

export const stackPrometheusUrl = (port = STACK_PROMETHEUS_PORT): string => `http://127.0.0.1:${port}`;

export interface PrometheusOptions {
  kubeconfig?: string;
  /** Environment → kube context (default: each local cluster's kwok context). */
  contexts?: Record<string, string>;
  port?: number;
}

export interface PrometheusEndpoint {
  url: string;
  port: number;
  version: string;
  pid: number;
  started: boolean;
  log: string;
  configFile: string;
}

export interface PrometheusTarget {
  env: string;
  /** Single-context kubeconfig for this cluster's pod discovery. */
  kubeconfigFile: string;
  /** Pods are kept only when they run on this node (the real one: kwok's pods have addresses nothing answers on). */
  nodeName: string;
  /** Traefik's metrics entrypoint for this cluster, host:port. */
  router: string;
}

export async function ensurePrometheus(opts: PrometheusOptions = {}): Promise<PrometheusEndpoint> {
  const kubeconfig = opts.kubeconfig ?? kubeconfigPath();
  const contexts = opts.contexts ?? Object.fromEntries(LOCAL_CLUSTERS.map((env) => [env, contextName(env)]));
  const port = opts.port ?? STACK_PROMETHEUS_PORT;
  const bin = prometheusBinary();
  const dir = stateDir('prometheus');

  // Prometheus reads a kubeconfig's current context: one file per cluster, holding only that context.
  const targets: PrometheusTarget[] = Object.entries(contexts).map(([env, context]) => {
    const kubeconfigFile = join(dir, `kubeconfig-${env}`);
    writeFileSync(kubeconfigFile, singleContextKubeconfig(kubeconfig, context), { mode: 0o600 });
    return { env, kubeconfigFile, nodeName: nodeLayout(env).nodeName, router: `127.0.0.1:${routerPorts(env).metrics}` };
  });
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, prometheusConfig(targets), { mode: 0o600 });
  const args = prometheusArgs(configFile, join(dir, 'data'), port);
  // The binary's size and mtime stand for its content (a rebuilt binary restarts the daemon).
  const binStat = statSync(bin);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([bin, binStat.size, binStat.mtimeMs, args, readFileSync(configFile, 'utf8'), ...targets.map((t) => readFileSync(t.kubeconfigFile, 'utf8'))]))
    .digest('hex');
  const fingerprintFile = join(dir, 'config.sha256');
  const url = stackPrometheusUrl(port);
  const endpoint = (pid: number, started: boolean, log: string): PrometheusEndpoint => ({ url, port, version: PROMETHEUS_VERSION, pid, started, log, configFile });

  const running = daemonPid(DAEMON);
  const log = join(stateDir('run'), `${DAEMON}.log`);
  if (running && existsSync(fingerprintFile) && readFileSync(fingerprintFile, 'utf8') === fingerprint && (await ready(url))) {
    return endpoint(running, false, log);
  }
  if (running) await stopDaemon(DAEMON);
  if (await portOpen(port)) throw new Error(`port ${port} is taken by something that is not slipway's Prometheus; stop it`);
  const started = startDaemon(DAEMON, bin, args);
  writeFileSync(fingerprintFile, fingerprint);
  await waitFor(`Prometheus on 127.0.0.1:${port}`, () => ready(url), 60_000, started.log);
  return endpoint(started.pid, true, started.log);
}

export async function stopPrometheus(): Promise<boolean> {
  return stopDaemon(DAEMON);
}

/** ~/.cache/slipway/bin/prometheus only: another one on PATH (Debian's) lacks kubernetes_sd_configs. */
export function prometheusBinary(): string {
  const own = join(slipwayHome(), 'bin', 'prometheus');
  if (!existsSync(own)) {
    throw new Error('the stack\'s Prometheus needs its own build (with kubernetes_sd_configs): run `bash tools/prometheus/build.sh ~/.cache/slipway/bin` (scripts/install.sh does)');
  }
  return own;
}

export function prometheusArgs(configFile: string, dataDir: string, port: number): string[] {
  return [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${dataDir}`,
    `--storage.tsdb.retention.time=${RETENTION}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ];
}

/**
 * Two jobs. `pods`: kubernetes_sd (role pod) per cluster; kept are Running pods on the real node annotated
 * `prometheus.io/scrape: "true"`, scraped at pod IP:`prometheus.io/port` on `prometheus.io/path`, labelled cluster,
 * namespace, pod and track (the pod label: stable → baseline, canary → canary). `router`: each cluster's Traefik.
 */
export function prometheusConfig(targets: readonly PrometheusTarget[]): string {
  const podRelabel = (t: PrometheusTarget) => [
    { source_labels: ['__meta_kubernetes_pod_node_name'], regex: escapeRegex(t.nodeName), action: 'keep' },
    { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_scrape'], regex: 'true', action: 'keep' },
    { source_labels: ['__meta_kubernetes_pod_phase'], regex: 'Running', action: 'keep' },
    { source_labels: ['__meta_kubernetes_pod_ip', '__meta_kubernetes_pod_annotation_prometheus_io_port'], regex: '(.+);(.+)', replacement: '$1:$2', target_label: '__address__' },
    { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_path'], regex: '(.+)', target_label: '__metrics_path__' },
    { target_label: 'cluster', replacement: t.env },
    { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
    { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
    { source_labels: ['__meta_kubernetes_pod_label_track'], regex: 'stable', replacement: 'baseline', target_label: 'track' },
    { source_labels: ['__meta_kubernetes_pod_label_track'], regex: 'canary', replacement: 'canary', target_label: 'track' },
  ];
  const config = {
    global: { scrape_interval: SCRAPE_INTERVAL, scrape_timeout: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
    scrape_configs: [
      // kubernetes_sd marks no target with the cluster it came from, so each cluster is its own scrape config
      // (job names must be unique: `pods-<env>`) that sets `cluster` and rewrites the job label to `pods`.
      ...targets.map((t) => ({
        job_name: `pods-${t.env}`,
        kubernetes_sd_configs: [
          {
            role: 'pod',
            kubeconfig_file: t.kubeconfigFile,
            // Watch only the real node's pods: the kwok nodes hold many more, none of which can be scraped.
            selectors: [{ role: 'pod', field: `spec.nodeName=${t.nodeName}` }],
          },
        ],
        relabel_configs: [...podRelabel(t), { target_label: 'job', replacement: 'pods' }],
      })),
      {
        job_name: 'router',
        static_configs: targets.map((t) => ({ targets: [t.router], labels: { cluster: t.env } })),
      },
    ],
  };
  return `# Written by client/stack/prometheus.ts; rewritten on every \`slipway stack up\`.\n${stringifyYaml(config)}`;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function ready(url: string): Promise<boolean> {
  const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
  return res?.status === 200;
}
