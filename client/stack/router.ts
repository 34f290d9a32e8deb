/**
 * The local clusters' router: one Traefik (built by tools/router/build.sh) per local cluster, running its Kubernetes
 * Gateway API provider against that cluster's API server. It serves the GatewayClass `slipway-traefik` and the
 * Gateway `slipway-router/slipway`, whose HTTP listener is Traefik's `web` entrypoint on 127.0.0.1; canaries' HTTPRoutes
 * attach to that Gateway and their backendRefs' weights and matches are what Traefik routes by.
 * Everything listens on loopback only: web, Prometheus metrics and Traefik's own API/ping each on their own port.
 * Idempotent like the other stack helpers: a running Traefik with the same configuration is reused, one started
 * with another configuration (or a cluster whose API server moved) is restarted.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { contextName, kubeconfigPath, LOCAL_CLUSTERS } from './kubernetes';
import { applyCrds, crdFiles, stackClients } from './crds';
import { daemonPid, findBinary, slipwayHome, startDaemon, stateDir, stopDaemon, waitFor } from './process';

/** The pinned Traefik (tools/router/build.sh builds this version; an older binary is reported, not used). */
export const TRAEFIK_VERSION = '3.6.12';
export const GATEWAY_CLASS = 'slipway-traefik';
export const GATEWAY = { name: 'slipway', namespace: 'slipway-router', listener: 'web' } as const;
const CONTROLLER = 'traefik.io/gateway-controller';
const GW = { group: 'gateway.networking.k8s.io', version: 'v1' };
const MANAGED = { 'app.kubernetes.io/managed-by': 'slipway' };

export interface RouterPorts {
  /** The Gateway's HTTP listener (Traefik's `web` entrypoint); the Gateway listener's port is this number. */
  web: number;
  /** Prometheus metrics at /metrics (Traefik's `metrics` entrypoint). */
  metrics: number;
  /** Traefik's API (/api/...) and /ping (its `traefik` entrypoint). */
  api: number;
}

/** Fixed ports per local cluster (qa 19280-19282, prod 19290-19292; clear of the ports tests give their own Prometheus and services) so a reused Traefik keeps its addresses. */
export function routerPorts(cluster: string): RouterPorts {
  const i = (LOCAL_CLUSTERS as readonly string[]).indexOf(cluster);
  if (i < 0) throw new Error(`no router ports for cluster "${cluster}" (local clusters: ${LOCAL_CLUSTERS.join(', ')}); pass ports explicitly`);
  const base = 19280 + 10 * i;
  return { web: base, metrics: base + 1, api: base + 2 };
}

export interface RouterOptions {
  kubeconfig?: string;
  context?: string;
  ports?: RouterPorts;
  /** Where tools/router/build.sh extracted the CRDs (default ~/.cache/slipway/router/crds). */
  crdDir?: string;
}

export interface RouterEndpoint {
  cluster: string;
  context: string;
  /** Requests for HTTPRoutes attached to the Gateway go here. */
  url: string;
  metricsUrl: string;
  apiUrl: string;
  ports: RouterPorts;
  gateway: typeof GATEWAY;
  pid: number;
  started: boolean;
  log: string;
}

const daemonName = (cluster: string): string => `traefik-${cluster}`;
export const routerCrdDir = (): string => join(slipwayHome(), 'router', 'crds');

export async function ensureRouter(cluster: string, opts: RouterOptions = {}): Promise<RouterEndpoint> {
  const kubeconfig = opts.kubeconfig ?? kubeconfigPath();
  const context = opts.context ?? contextName(cluster);
  const ports = opts.ports ?? routerPorts(cluster);
  const bin = traefikBinary();
  await installRouterCrds(kubeconfig, context, opts.crdDir);
  await ensureGateway(kubeconfig, context, ports.web);

  // Traefik reads KUBECONFIG's current context: give it a file holding only this cluster's context.
  const dir = stateDir('router', cluster);
  const ownKubeconfig = join(dir, 'kubeconfig');
  writeFileSync(ownKubeconfig, singleContextKubeconfig(kubeconfig, context), { mode: 0o600 });
  const args = traefikArgs(ports);
  const fingerprint = createHash('sha256').update(JSON.stringify([bin, args, readFileSync(ownKubeconfig, 'utf8')])).digest('hex');
  const fingerprintFile = join(dir, 'config.sha256');
  const name = daemonName(cluster);
  const endpoint = (pid: number, started: boolean, log: string): RouterEndpoint => ({
    cluster,
    context,
    url: `http://127.0.0.1:${ports.web}`,
    metricsUrl: `http://127.0.0.1:${ports.metrics}/metrics`,
    apiUrl: `http://127.0.0.1:${ports.api}`,
    ports,
    gateway: GATEWAY,
    pid,
    started,
    log,
  });

  const running = daemonPid(name);
  const log = join(stateDir('run'), `${name}.log`);
  if (running && existsSync(fingerprintFile) && readFileSync(fingerprintFile, 'utf8') === fingerprint && (await pingOk(ports.api))) {
    await waitFor(`Gateway ${GATEWAY.namespace}/${GATEWAY.name} on ${context}`, () => gatewayProgrammed(kubeconfig, context), 30_000, log);
    return endpoint(running, false, log);
  }
  if (running) await stopDaemon(name);
  const started = startDaemon(name, bin, args, { ...process.env, KUBECONFIG: ownKubeconfig });
  writeFileSync(fingerprintFile, fingerprint);
  await waitFor(`Traefik for ${cluster} (ping on 127.0.0.1:${ports.api})`, () => pingOk(ports.api), 30_000, started.log);
  await waitFor(`Gateway ${GATEWAY.namespace}/${GATEWAY.name} programmed by Traefik on ${context}`, () => gatewayProgrammed(kubeconfig, context), 60_000, started.log);
  return endpoint(started.pid, true, started.log);
}

export async function stopRouter(cluster: string): Promise<boolean> {
  return stopDaemon(daemonName(cluster));
}

export async function stopRouters(clusters: readonly string[] = LOCAL_CLUSTERS): Promise<string[]> {
  const stopped: string[] = [];
  for (const c of clusters) if (await stopRouter(c)) stopped.push(c);
  return stopped;
}

function traefikBinary(): string {
  const own = join(slipwayHome(), 'bin', 'traefik');
  const bin = existsSync(own) ? own : findBinary('traefik');
  if (!bin) throw new Error('the local router needs traefik: run `bash tools/router/build.sh ~/.cache/slipway/bin ~/.cache/slipway/router/crds` (scripts/install.sh does)');
  return bin;
}

/** Traefik's static configuration as flags: loopback entrypoints, the Gateway provider, Prometheus metrics. */
export function traefikArgs(ports: RouterPorts): string[] {
  return [
    // No calls home: this machine has no internet, and a router should not phone out anyway.
    '--global.checkNewVersion=false',
    '--global.sendAnonymousUsage=false',
    '--log.level=INFO',
    '--log.noColor=true', // the log is a file
    `--entryPoints.web.address=127.0.0.1:${ports.web}`,
    `--entryPoints.metrics.address=127.0.0.1:${ports.metrics}`,
    `--entryPoints.traefik.address=127.0.0.1:${ports.api}`,
    // The API on the `traefik` entrypoint, which listens on loopback only ("insecure" = without a router of its own).
    '--api=true',
    '--api.insecure=true',
    '--api.dashboard=false',
    '--ping=true',
    '--ping.entryPoint=traefik',
    '--metrics.prometheus=true',
    '--metrics.prometheus.entryPoint=metrics',
    '--metrics.prometheus.addServicesLabels=true',
    '--metrics.prometheus.addRoutersLabels=true',
    '--metrics.prometheus.addEntryPointsLabels=true',
    // Traefik's default buckets (0.1, 0.3, 1.2, 5 s) put a 5 ms and a 55 ms answer in the same bucket: a canary's
    // +50 ms would be invisible to its p99. These resolve the latencies a web service's canary is judged on.
    '--metrics.prometheus.buckets=0.005,0.01,0.025,0.05,0.075,0.1,0.15,0.25,0.5,1,2.5,5',
    '--providers.kubernetesGateway=true',
    '--providers.kubernetesGateway.statusAddress.ip=127.0.0.1',
    // The default 2 s between provider events and a reload would alone eat the switch budget (weight patched →
    // obeyed within 2 s); 100 ms still coalesces the burst of events one route change causes.
    '--providers.providersThrottleDuration=100ms',
  ];
}

async function pingOk(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
  return res?.status === 200;
}

/** A kubeconfig with only `context` (and its cluster and user), current. */
export function singleContextKubeconfig(file: string, context: string): string {
  type Named = { name: string; [k: string]: unknown };
  const kc = parseYaml(readFileSync(file, 'utf8')) as { contexts?: (Named & { context: { cluster: string; user: string } })[]; clusters?: Named[]; users?: Named[] };
  const ctx = kc.contexts?.find((c) => c.name === context);
  if (!ctx) throw new Error(`kube context "${context}" is not in ${file}`);
  return stringifyYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: (kc.clusters ?? []).filter((c) => c.name === ctx.context.cluster),
    users: (kc.users ?? []).filter((u) => u.name === ctx.context.user),
    contexts: [ctx],
    'current-context': context,
  });
}


const notFound = (err: unknown): boolean => (err as { code?: number })?.code === 404;

/**
 * Registers the real CRDs extracted by tools/router/build.sh: the Gateway API standard channel and Istio's
 * VirtualService. A CRD is replaced whole (not merged) when its file changed, so the stand-ins an older
 * client/stack/kubernetes.ts registered (schema-less, preserve-unknown-fields) give way to the real schemas.
 */
export async function installRouterCrds(kubeconfig: string, context: string, crdDir = routerCrdDir()): Promise<string[]> {
  const files = crdFiles(crdDir, ['gateway-api', 'istio']);
  if (!files.some((f) => f.includes('httproutes'))) {
    throw new Error(`no Gateway API CRDs in ${crdDir}: run \`bash tools/router/build.sh ~/.cache/slipway/bin ${crdDir}\``);
  }
  return applyCrds(kubeconfig, context, files);
}

/** The GatewayClass Traefik's controller claims and the Gateway whose listener is the `web` entrypoint. */
async function ensureGateway(kubeconfig: string, context: string, webPort: number): Promise<void> {
  const { core, custom } = await stackClients(kubeconfig, context);
  await core.createNamespace({ body: { metadata: { name: GATEWAY.namespace, labels: MANAGED } } }).catch((err) => {
    if ((err as { code?: number }).code !== 409) throw err;
  });
  const gatewayClass = {
    apiVersion: `${GW.group}/${GW.version}`,
    kind: 'GatewayClass',
    metadata: { name: GATEWAY_CLASS, labels: MANAGED },
    spec: { controllerName: CONTROLLER },
  };
  const gateway = {
    apiVersion: `${GW.group}/${GW.version}`,
    kind: 'Gateway',
    metadata: { name: GATEWAY.name, namespace: GATEWAY.namespace, labels: MANAGED },
    spec: {
      gatewayClassName: GATEWAY_CLASS,
      // Traefik binds a listener to the entrypoint with the same port; routes from every namespace may attach.
      listeners: [{ name: GATEWAY.listener, port: webPort, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } }],
    },
  };
  await upsert(custom, { ...GW, plural: 'gatewayclasses' }, gatewayClass);
  await upsert(custom, { ...GW, plural: 'gateways', namespace: GATEWAY.namespace }, gateway);
}

type Custom = Awaited<ReturnType<typeof stackClients>>['custom'];

/** Creates the object, or replaces its spec when it differs (a changed port must reach Traefik). */
async function upsert(custom: Custom, ref: { group: string; version: string; plural: string; namespace?: string }, body: { metadata: { name: string }; spec: unknown }): Promise<void> {
  const { namespace, ...cluster } = ref;
  const name = body.metadata.name;
  const read = () => (namespace ? custom.getNamespacedCustomObject({ ...cluster, namespace, name }) : custom.getClusterCustomObject({ ...cluster, name }));
  const existing = (await read().catch((err) => {
    if (notFound(err)) return undefined;
    throw err;
  })) as { metadata: { resourceVersion: string }; spec: unknown } | undefined;
  if (!existing) {
    await (namespace ? custom.createNamespacedCustomObject({ ...cluster, namespace, body }) : custom.createClusterCustomObject({ ...cluster, body }));
    return;
  }
  if (sameSpec(existing.spec, body.spec)) return;
  const replaced = { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } };
  await (namespace
    ? custom.replaceNamespacedCustomObject({ ...cluster, namespace, name, body: replaced })
    : custom.replaceClusterCustomObject({ ...cluster, name, body: replaced }));
}

/** Whether every field we set has the value we want (the API server adds defaults we do not set). */
function sameSpec(have: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => sameSpec(have[i], w));
  if (want && typeof want === 'object') {
    return Boolean(have) && typeof have === 'object' && Object.entries(want).every(([k, v]) => sameSpec((have as Record<string, unknown>)[k], v));
  }
  return have === want;
}

/** Traefik has accepted the Gateway's current generation and programmed its listener. */
async function gatewayProgrammed(kubeconfig: string, context: string): Promise<boolean> {
  const { custom } = await stackClients(kubeconfig, context);
  const gw = (await custom.getNamespacedCustomObject({ ...GW, plural: 'gateways', namespace: GATEWAY.namespace, name: GATEWAY.name })) as {
    metadata: { generation?: number };
    status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] };
  };
  const programmed = gw.status?.conditions?.find((c) => c.type === 'Programmed');
  return programmed?.status === 'True' && programmed.observedGeneration === gw.metadata.generation;
}
