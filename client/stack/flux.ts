/**
 * Flux for the local clusters: source-controller and kustomize-controller (built by tools/flux/build.sh from their
 * Go modules) running out of cluster, one pair per local cluster, each with a kubeconfig holding only that
 * cluster's context. Leader election is off (one replica), every listener is on 127.0.0.1 with ports unique per
 * cluster, and source-controller advertises its artifact server at that loopback address, which kustomize-controller
 * (on the same host) fetches from. Both watch all namespaces. Their CRDs come from the same module versions.
 * helm-controller and notification-controller are not built (the Go module proxy does not serve them): HelmRelease
 * delivery is contract-only, and a merge is applied promptly by `requestReconcile` (the reconcile.fluxcd.io/requestedAt
 * annotation) instead of a webhook Receiver. See docs/gitops.md.
 * Idempotent like the other stack helpers: a running controller with the same configuration is reused, one started
 * with another configuration (or a cluster whose API server moved) is restarted.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { contextName, kubeconfigPath, LOCAL_CLUSTERS } from './kubernetes';
import { ensureGitea, stopGitea, type GiteaEndpoint, type GiteaOptions } from './gitea';
import { applyCrds, crdFiles, stackClients } from './crds';
import { daemonPid, findBinary, slipwayHome, startDaemon, stateDir, stopDaemon, waitFor } from './process';
import { singleContextKubeconfig } from './router';

/** The pinned controllers (tools/flux/build.sh builds these; Flux v2.8's source- and kustomize-controller). */
export const FLUX_VERSION = 'v1.9.6';
export const FLUX_NAMESPACE = 'flux-system';
export const FLUX_CONTROLLERS = ['source-controller', 'kustomize-controller'] as const;
export type FluxController = (typeof FLUX_CONTROLLERS)[number];
/** The annotation both controllers reconcile on at once when its value changes (fluxcd/pkg/apis/meta). */
export const RECONCILE_REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
const MANAGED = { 'app.kubernetes.io/managed-by': 'slipway' };

export interface FluxPorts {
  sourceMetrics: number;
  sourceHealth: number;
  /** source-controller's artifact server (tarballs of fetched revisions). */
  storage: number;
  kustomizeMetrics: number;
  kustomizeHealth: number;
}

/** Fixed ports per local cluster (qa 19310–19314, prod 19320–19324; Gitea is 19300, the routers 19280–19292). */
export function fluxPorts(cluster: string): FluxPorts {
  const i = (LOCAL_CLUSTERS as readonly string[]).indexOf(cluster);
  if (i < 0) throw new Error(`no Flux ports for cluster "${cluster}" (local clusters: ${LOCAL_CLUSTERS.join(', ')}); pass ports explicitly`);
  const base = 19310 + 10 * i;
  return { sourceMetrics: base, sourceHealth: base + 1, storage: base + 2, kustomizeMetrics: base + 3, kustomizeHealth: base + 4 };
}

export interface FluxOptions {
  kubeconfig?: string;
  context?: string;
  ports?: FluxPorts;
  /** Where tools/flux/build.sh extracted the CRDs (default ~/.cache/slipway/flux/crds). */
  crdDir?: string;
}

export interface FluxEndpoint {
  cluster: string;
  context: string;
  ports: FluxPorts;
  /** Where source-controller serves artifacts (and advertises them in GitRepository status). */
  storageUrl: string;
  /** Per controller: its pid, whether this call started it, and its log file. */
  controllers: Record<FluxController, { pid: number; started: boolean; log: string }>;
}

const daemonName = (controller: FluxController, cluster: string): string => `flux-${controller.replace('-controller', '')}-${cluster}`;
export const fluxCrdDir = (): string => join(slipwayHome(), 'flux', 'crds');

export async function ensureFlux(cluster: string, opts: FluxOptions = {}): Promise<FluxEndpoint> {
  const kubeconfig = opts.kubeconfig ?? kubeconfigPath();
  const context = opts.context ?? contextName(cluster);
  const ports = opts.ports ?? fluxPorts(cluster);
  await installFluxCrds(kubeconfig, context, opts.crdDir);
  await ensureNamespace(kubeconfig, context, FLUX_NAMESPACE);

  // Each controller reads KUBECONFIG's current context: give them a file holding only this cluster's context.
  const dir = stateDir('flux', cluster);
  const ownKubeconfig = join(dir, 'kubeconfig');
  writeFileSync(ownKubeconfig, singleContextKubeconfig(kubeconfig, context), { mode: 0o600 });
  const storagePath = stateDir('flux', cluster, 'artifacts');
  const env = { ...process.env, KUBECONFIG: ownKubeconfig, RUNTIME_NAMESPACE: FLUX_NAMESPACE };
  const controllers = {} as FluxEndpoint['controllers'];
  for (const controller of FLUX_CONTROLLERS) {
    const bin = fluxBinary(controller);
    const args = controllerArgs(controller, ports, storagePath);
    const healthPort = controller === 'source-controller' ? ports.sourceHealth : ports.kustomizeHealth;
    const name = daemonName(controller, cluster);
    const fingerprint = createHash('sha256').update(JSON.stringify([bin, args, readFileSync(ownKubeconfig, 'utf8')])).digest('hex');
    const fingerprintFile = join(dir, `${controller}.sha256`);
    const running = daemonPid(name);
    const log = join(stateDir('run'), `${name}.log`);
    if (running && existsSync(fingerprintFile) && readFileSync(fingerprintFile, 'utf8') === fingerprint && (await ready(healthPort))) {
      controllers[controller] = { pid: running, started: false, log };
      continue;
    }
    if (running) await stopDaemon(name);
    const started = startDaemon(name, bin, args, env);
    writeFileSync(fingerprintFile, fingerprint);
    await waitFor(`Flux ${controller} for ${cluster} (readyz on 127.0.0.1:${healthPort})`, () => ready(healthPort), 60_000, started.log);
    controllers[controller] = { pid: started.pid, started: true, log: started.log };
  }
  return { cluster, context, ports, storageUrl: `http://127.0.0.1:${ports.storage}`, controllers };
}

export async function stopFlux(clusters: readonly string[] = LOCAL_CLUSTERS): Promise<string[]> {
  const stopped: string[] = [];
  for (const cluster of clusters) {
    for (const controller of [...FLUX_CONTROLLERS].reverse()) {
      const name = daemonName(controller, cluster);
      if (await stopDaemon(name)) stopped.push(name);
    }
  }
  return stopped;
}

export interface GitopsEndpoint {
  gitea: GiteaEndpoint;
  flux: Record<string, FluxEndpoint>;
}

/** Whether Gitea and the Flux controllers are built here (`bash scripts/install.sh --gitops`). */
export function gitopsInstalled(): boolean {
  return ['gitea', ...FLUX_CONTROLLERS].every((name) => existsSync(join(slipwayHome(), 'bin', name)) || findBinary(name) !== undefined);
}

/** Gitea and, for each local cluster, Flux: the GitOps half of `slipway stack up` in one call. */
export async function ensureGitops(opts: { clusters?: readonly string[]; gitea?: GiteaOptions; kubeconfig?: string } = {}): Promise<GitopsEndpoint> {
  const gitea = await ensureGitea(opts.gitea);
  const flux: Record<string, FluxEndpoint> = {};
  for (const cluster of opts.clusters ?? LOCAL_CLUSTERS) flux[cluster] = await ensureFlux(cluster, { kubeconfig: opts.kubeconfig });
  return { gitea, flux };
}

/** Gitea and every local cluster's Flux controllers. */
export async function stopGitops(): Promise<string[]> {
  const stopped = await stopFlux();
  if (await stopGitea()) stopped.push('gitea');
  return stopped;
}

function fluxBinary(controller: FluxController): string {
  const own = join(slipwayHome(), 'bin', controller);
  const bin = existsSync(own) ? own : findBinary(controller);
  if (!bin) throw new Error(`GitOps delivery needs Flux's ${controller}: run \`bash tools/flux/build.sh ~/.cache/slipway/bin ~/.cache/slipway/flux/crds\` (scripts/install.sh does)`);
  return bin;
}

/** The controllers' flags: loopback listeners, one replica (no leader election), every namespace, no event sink. */
export function controllerArgs(controller: FluxController, ports: FluxPorts, storagePath: string): string[] {
  const common = ['--enable-leader-election=false', '--watch-all-namespaces=true', '--log-level=info', '--log-encoding=json'];
  if (controller === 'source-controller') {
    return [
      ...common,
      `--metrics-addr=127.0.0.1:${ports.sourceMetrics}`,
      `--health-addr=127.0.0.1:${ports.sourceHealth}`,
      `--storage-addr=127.0.0.1:${ports.storage}`,
      // What it writes into GitRepository status.artifact.url; kustomize-controller runs on this host too.
      `--storage-adv-addr=127.0.0.1:${ports.storage}`,
      `--storage-path=${storagePath}`,
    ];
  }
  return [
    ...common,
    `--metrics-addr=127.0.0.1:${ports.kustomizeMetrics}`,
    `--health-addr=127.0.0.1:${ports.kustomizeHealth}`,
    // Only what the environment repository holds is applied: no kustomize bases fetched from elsewhere.
    '--no-remote-bases=true',
  ];
}

async function ready(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
  return res?.status === 200;
}


const httpCode = (err: unknown): number | undefined => (err as { code?: number })?.code;

async function ensureNamespace(kubeconfig: string, context: string, name: string): Promise<void> {
  const { core } = await stackClients(kubeconfig, context);
  await core.createNamespace({ body: { metadata: { name, labels: MANAGED } } }).catch((err) => {
    if (httpCode(err) !== 409) throw err;
  });
}

/**
 * Registers the CRDs tools/flux/build.sh extracted (GitRepository, OCIRepository, HelmRepository, HelmChart, Bucket,
 * ExternalArtifact, Kustomization). A CRD is replaced whole when its file changed (a new pinned version).
 */
export async function installFluxCrds(kubeconfig: string, context: string, crdDir = fluxCrdDir()): Promise<string[]> {
  const files = crdFiles(crdDir, FLUX_CONTROLLERS);
  if (!files.some((f) => f.includes('gitrepositories')) || !files.some((f) => f.includes('kustomizations'))) {
    throw new Error(`no Flux CRDs in ${crdDir}: run \`bash tools/flux/build.sh ~/.cache/slipway/bin ${crdDir}\``);
  }
  return applyCrds(kubeconfig, context, files);
}

export interface FluxObjectRef {
  kind: 'GitRepository' | 'Kustomization';
  namespace: string;
  name: string;
}

const API: Record<FluxObjectRef['kind'], { group: string; version: string; plural: string }> = {
  GitRepository: { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories' },
  Kustomization: { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' },
};

/**
 * Asks Flux to reconcile now rather than at its next interval (what `flux reconcile … --with-source` does): a new
 * value of reconcile.fluxcd.io/requestedAt. On the GitRepository, source-controller fetches the branch at once, and
 * a new revision's artifact makes kustomize-controller apply every Kustomization that uses it, so the source alone
 * is enough for a merge; a Kustomization named too is reconciled again even when the revision did not change.
 * Returns the value written (Flux echoes it as status.lastHandledReconcileAt once handled).
 */
export async function requestReconcile(kubeconfig: string, context: string, refs: FluxObjectRef[], at = new Date()): Promise<string> {
  const { k8s, custom } = await stackClients(kubeconfig, context);
  const value = at.toISOString();
  for (const ref of refs) {
    await custom.patchNamespacedCustomObject(
      { ...API[ref.kind], namespace: ref.namespace, name: ref.name, body: { metadata: { annotations: { [RECONCILE_REQUESTED_AT]: value } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }
  return value;
}

export interface FluxStatus {
  ready?: { status: string; reason?: string; message?: string };
  /** GitRepository: status.artifact.revision; Kustomization: status.lastAppliedRevision. */
  revision?: string;
  lastAttemptedRevision?: string;
  lastHandledReconcileAt?: string;
}

/** The Ready condition and revisions Flux reports for one object (undefined fields until it has reconciled it). */
export async function fluxStatus(kubeconfig: string, context: string, ref: FluxObjectRef): Promise<FluxStatus> {
  const { custom } = await stackClients(kubeconfig, context);
  const obj = (await custom.getNamespacedCustomObject({ ...API[ref.kind], namespace: ref.namespace, name: ref.name })) as {
    status?: {
      conditions?: { type: string; status: string; reason?: string; message?: string }[];
      artifact?: { revision?: string };
      lastAppliedRevision?: string;
      lastAttemptedRevision?: string;
      lastHandledReconcileAt?: string;
    };
  };
  const s = obj.status ?? {};
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  return {
    ready: ready && { status: ready.status, reason: ready.reason, message: ready.message },
    revision: ref.kind === 'GitRepository' ? s.artifact?.revision : s.lastAppliedRevision,
    lastAttemptedRevision: s.lastAttemptedRevision,
    lastHandledReconcileAt: s.lastHandledReconcileAt,
  };
}
