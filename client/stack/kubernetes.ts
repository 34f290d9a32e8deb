/**
 * Local Kubernetes clusters for the deploy stages: kwok clusters (`--runtime binary`) whose kube-apiserver,
 * controller-manager and scheduler are the real ones built from Go modules, with etcd from Debian. kwok simulates
 * nodes and pods, so rollouts, probes' readiness and Jobs complete as API state while no container runs.
 * QA and production are separate clusters (separate kube contexts), as in the reference architecture.
 * Idempotent: a running cluster is reused, a stopped one restarted, a missing one created.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { findBinary, pidAlive, portOpen, slipwayHome, stateDir } from './process';

const run = promisify(execFile);

export const LOCAL_CLUSTERS = ['qa', 'prod'] as const;
export const clusterName = (env: string): string => `slipway-${env}`;
export const contextName = (env: string): string => `kwok-${clusterName(env)}`;

export interface ClustersEndpoint {
  kubeconfig: string;
  contexts: Record<string, string>;
  /** What happened to each cluster: reused (running), started (was stopped), created. */
  actions: Record<string, 'reused' | 'started' | 'created'>;
  ms: number;
}

function binaries(): Record<string, string> {
  const need = ['kwokctl', 'kwok', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'];
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const n of need) {
    // slipway's own etcd 3.6 first: a distribution's older etcd breaks the controllers' watches.
    const own = join(slipwayHome(), 'bin', n);
    const p = existsSync(own) ? own : findBinary(n);
    if (p) found[n] = p;
    else missing.push(n);
  }
  if (missing.length) throw new Error(`local Kubernetes needs ${missing.join(', ')}: run scripts/install.sh (it builds them from the Go module proxy; see docs/local-kubernetes.md)`);
  return found;
}

export function kubeconfigPath(): string {
  return join(stateDir('kwok'), 'kubeconfig');
}

async function kwokctl(args: string[], timeoutMs = 240_000): Promise<string> {
  const bin = binaries();
  const { stdout } = await run(bin.kwokctl, args, { env: { ...process.env, KWOK_WORKDIR: stateDir('kwok') }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/**
 * Starts a stopped cluster. Processes killed from outside (a session that ended) leave pid files behind; a first
 * start can race with processes still exiting, so a failed start is stopped cleanly and tried once more.
 */
async function restart(name: string): Promise<boolean> {
  // kwokctl skips a component whose recorded pid is alive; let killed ones finish exiting first.
  await componentsExited(name);
  for (let attempt = 0; attempt < 2; attempt++) {
    await kwokctl(['start', 'cluster', '--name', name, '--wait', '60s'], 150_000).catch(() => undefined);
    if (await waitAnswer(name, 10_000)) return true;
    await kwokctl(['stop', 'cluster', '--name', name]).catch(() => undefined);
  }
  return false;
}

/**
 * The live processes among the pids kwokctl recorded for a cluster's components (etcd, apiserver, controllers, kwok).
 * A pid file outlives its process (a session that ended); only a process whose command line names the cluster's
 * directory counts, never whatever process has been given that number since.
 */
function livePids(name: string): number[] {
  const dir = join(stateDir('kwok'), 'clusters', name);
  const pids = join(dir, 'pids');
  const recorded = existsSync(pids) ? readdirSync(pids).map((f) => Number(readFileSync(join(pids, f), 'utf8'))).filter(Boolean) : [];
  return recorded.filter((pid) => {
    try {
      return pidAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`);
    } catch {
      return false; // exited meanwhile
    }
  });
}

/** Waits (bounded, 15 s) until none of the cluster's components is alive; false when some still are. */
async function componentsExited(name: string): Promise<boolean> {
  for (let i = 0; i < 60 && livePids(name).length; i++) await new Promise((r) => setTimeout(r, 250));
  return livePids(name).length === 0;
}

async function waitAnswer(name: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await apiAnswers(name)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Whether the cluster's apiserver accepts connections (the port comes from kwokctl's per-cluster kubeconfig). */
async function apiAnswers(name: string): Promise<boolean> {
  const file = join(stateDir('kwok'), 'clusters', name, 'kubeconfig.yaml');
  if (!existsSync(file)) return false;
  const m = /server:\s*https?:\/\/([^:\s]+):(\d+)/.exec(readFileSync(file, 'utf8'));
  return Boolean(m) && portOpen(Number(m![2]), m![1]);
}

export async function ensureClusters(envs: readonly string[] = LOCAL_CLUSTERS): Promise<ClustersEndpoint> {
  const started = Date.now();
  const bin = binaries();
  const kubeconfig = kubeconfigPath();
  const actions: ClustersEndpoint['actions'] = {};
  const existing = (await kwokctl(['get', 'clusters'])).split('\n').map((s) => s.trim()).filter(Boolean);
  // Sequential: two control planes starting at once on two cores slow each other more than they gain.
  for (const env of envs) {
    const name = clusterName(env);
    if (existing.includes(name) && existsSync(join(stateDir('kwok'), 'clusters', name, 'kubeconfig.yaml'))) {
      if (await apiAnswers(name)) {
        actions[env] = 'reused';
        continue;
      }
      if (await restart(name)) {
        actions[env] = 'started';
        continue;
      }
      // A cluster that will not come back (killed mid-write, half-deleted) is recreated: local state is disposable.
      await kwokctl(['delete', 'cluster', '--name', name, '--kubeconfig', kubeconfig]).catch(() => undefined);
    }
    await kwokctl([
      'create', 'cluster', '--name', name, '--runtime', 'binary', '--kubeconfig', kubeconfig,
      '--etcd-binary', bin.etcd, '--kube-apiserver-binary', bin['kube-apiserver'],
      '--kube-controller-manager-binary', bin['kube-controller-manager'], '--kube-scheduler-binary', bin['kube-scheduler'],
      '--kwok-controller-binary', bin.kwok, '--wait', '3m',
      // kwok plays only its own simulated nodes: the real node (client/stack/node.ts) runs a real kubelet.
      '--extra-args', 'kwok-controller=manage-all-nodes=false',
      '--extra-args', 'kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
    ]);
    // Two simulated nodes, so a Deployment of two replicas spreads and scheduling is real work.
    await kwokctl(['--name', name, 'scale', 'node', '--replicas', '2']);
    actions[env] = 'created';
  }
  for (const env of envs) {
    if (actions[env] !== 'reused') await nodesSchedulable(kubeconfig, contextName(env));
    // The real Gateway API (standard channel) and Istio VirtualService CRDs (tools/router/build.sh extracts them);
    // imported late because router.ts builds on this module.
    await (await import('./router')).installRouterCrds(kubeconfig, contextName(env));
  }
  return { kubeconfig, contexts: Object.fromEntries(envs.map((e) => [e, contextName(e)])), actions, ms: Date.now() - started };
}

export async function stopClusters(envs: readonly string[] = LOCAL_CLUSTERS): Promise<string[]> {
  if (!findBinary('kwokctl')) return [];
  const stopped: string[] = [];
  for (const env of envs) {
    const name = clusterName(env);
    // A cluster whose apiserver was killed from outside may still have etcd or a controller running: stop those too.
    if ((await apiAnswers(name)) || livePids(name).length) {
      await kwokctl(['stop', 'cluster', '--name', name]);
      // kwokctl returns before the components have exited; "stopped" means the apiserver no longer answers and
      // every component's process has exited (etcd, the controllers and kwok outlive the apiserver by a moment).
      for (let i = 0; i < 120 && (await apiAnswers(name)); i++) await new Promise((r) => setTimeout(r, 250));
      if (!(await componentsExited(name))) {
        for (const pid of livePids(name)) process.kill(pid, 'SIGKILL');
      }
      stopped.push(name);
    }
  }
  return stopped;
}

export async function deleteClusters(envs: readonly string[] = LOCAL_CLUSTERS): Promise<void> {
  for (const env of envs) await kwokctl(['delete', 'cluster', '--name', clusterName(env), '--kubeconfig', kubeconfigPath()]).catch(() => undefined);
}

/** The local clusters' kubeconfig when the user has none of their own (so `slipway inventory` works on the demo). */
export function localKubeconfig(): string | undefined {
  const own = join(homedir(), '.kube', 'config');
  const local = join(slipwayHome(), 'kwok', 'kubeconfig');
  const ownContexts = existsSync(own) ? ((parseYaml(readFileSync(own, 'utf8')) as { contexts?: unknown[] } | null)?.contexts?.length ?? 0) : 0;
  return ownContexts === 0 && existsSync(local) ? local : undefined;
}

/**
 * After a restart kwok's controller finds the node Leases its previous instance held; it cannot take them over until
 * they expire, and until then it plays no pod stages — new pods stay unready for minutes. The stale Leases are
 * deleted so kwok recreates them at once; the cluster counts as up when every node has a fresh Lease and is Ready.
 */
async function nodesSchedulable(kubeconfig: string, context: string, timeoutMs = 90_000): Promise<void> {
  const { k8s } = await import('../../activities/kubernetes/client');
  const { KubeCluster } = await import('../../activities/kubernetes/cluster');
  const cluster = KubeCluster.forKubeconfig(kubeconfig);
  const core = cluster.api(context, k8s.CoreV1Api);
  const coord = cluster.api(context, k8s.CoordinationV1Api);
  const since = Date.now();
  const namespace = 'kube-node-lease';
  for (const l of (await coord.listNamespacedLease({ namespace })).items) {
    const renewed = l.spec?.renewTime ? new Date(l.spec.renewTime as unknown as string).getTime() : 0;
    if (renewed < since - 5_000) await coord.deleteNamespacedLease({ name: l.metadata!.name!, namespace }).catch(() => undefined);
  }
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    // Only kwok's nodes: a real node that is stopped (stack down) comes back with its own kubelet, later.
    const nodes = (await core.listNode().catch(() => ({ items: [] as never[] }))).items.filter((n) => n.metadata?.annotations?.['kwok.x-k8s.io/node'] === 'fake');
    const leases = new Map((await coord.listNamespacedLease({ namespace }).catch(() => ({ items: [] as never[] }))).items.map((l) => [l.metadata?.name, l]));
    const blocked = nodes.filter((n) => {
      const lease = leases.get(n.metadata?.name);
      const fresh = lease?.spec?.renewTime && new Date(lease.spec.renewTime as unknown as string).getTime() >= since - 5_000;
      const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      const tainted = n.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/'));
      return !fresh || !ready || tainted;
    });
    if (nodes.length && !blocked.length) return;
    last = nodes.length ? `${blocked.map((n) => n.metadata?.name).join(', ')}: no fresh lease, not ready or tainted` : 'no nodes';
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${context}: nodes did not become schedulable within ${timeoutMs / 1000}s (${last})`);
}

